import io

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from customers import imports
from customers.imports import ImportRefused, customers_import
from customers.models import Customer, CustomerChange
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db

HEADER = (
    "email,first_name,last_name,job_title,company,phone,address_line1,address_line2,"
    "city,region,postal_code,country,language,currency\n"
)


def write(tmp_path, body, name="customers.csv"):
    path = tmp_path / name
    path.write_text(HEADER + body, encoding="utf-8")
    return path


def run_import(path, *args):
    out, err = io.StringIO(), io.StringIO()
    call_command("import_customers", str(path), *args, "--no-progress", stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_a_good_file_imports_every_row(tmp_path):
    path = write(
        tmp_path,
        "ada@example.com,Ada,Lovelace,Engineer,Analytical Ltd,+44 20 7946 0958,1 Main St,,London,,EC1A 1AA,GB,en,GBP\n"
        "grace@example.com,Grace,Hopper,,,,,,Arlington,VA,22201,US,en,USD\n",
    )
    out, _ = run_import(path)
    assert "2 created" in out
    ada = Customer.objects.by_email("ada@example.com").get()
    assert str(ada.phone) == "+442079460958"
    assert ada.country == "GB"


def test_a_file_with_one_bad_row_imports_nothing_and_names_the_row(tmp_path):
    path = write(
        tmp_path,
        "ada@example.com,Ada,Lovelace,,,,,,,,,GB,en,GBP\n"
        "not-an-address,Bad,Row,,,,,,,,,GB,en,GBP\n"
        "grace@example.com,Grace,Hopper,,,,,,,,,ZZ,en,USD\n",
    )
    with pytest.raises(CommandError) as raised:
        run_import(path)
    assert "nothing was imported" in str(raised.value)
    assert Customer.objects.count() == 0


def test_each_bad_row_is_reported_with_line_field_and_reason(tmp_path, capsys):
    path = write(
        tmp_path,
        "ada@example.com,Ada,Lovelace,,,,,,,,,GB,en,GBP\n"
        "not-an-address,Bad,Row,,,,,,,,,GB,en,GBP\n"
        "grace@example.com,Grace,Hopper,,,12345,,,,,,ZZ,en,USD\n",
    )
    err = io.StringIO()
    with pytest.raises(CommandError):
        call_command("import_customers", str(path), "--no-progress", stdout=io.StringIO(), stderr=err)
    report = err.getvalue()
    assert "row 3, email:" in report
    assert "row 4, country:" in report
    assert "row 4, phone:" in report
    assert "row 2" not in report


def test_a_card_number_in_a_row_is_refused(tmp_path):
    path = write(tmp_path, "ada@example.com,Ada,Lovelace,,4111 1111 1111 1111,,,,,,,GB,en,GBP\n")
    err = io.StringIO()
    with pytest.raises(CommandError):
        call_command("import_customers", str(path), "--no-progress", stdout=io.StringIO(), stderr=err)
    assert "row 2, company: This looks like a payment card number" in err.getvalue()


def test_an_existing_address_is_an_error_without_update(tmp_path):
    CustomerFactory(email="ada@example.com", first_name="Ada")
    path = write(tmp_path, "ADA@example.com,Augusta,King,,,,,,,,,GB,en,GBP\n")
    err = io.StringIO()
    with pytest.raises(CommandError):
        call_command("import_customers", str(path), "--no-progress", stdout=io.StringIO(), stderr=err)
    assert "already exists" in err.getvalue()
    assert Customer.objects.get().first_name == "Ada"


def test_update_changes_existing_customers_and_records_the_corrections(tmp_path):
    customer = CustomerFactory(email="ada@example.com", first_name="Ada", last_name="Byron")
    path = write(tmp_path, "ada@example.com,Ada,King,,,,,,,,,GB,en,GBP\n")
    out, _ = run_import(path, "--update")
    assert "1 updated" in out
    customer.refresh_from_db()
    assert customer.last_name == "King"
    change = CustomerChange.objects.get(customer=customer, field="last_name")
    assert (change.old_value, change.new_value, change.changed_by) == ("Byron", "King", "import")


def test_the_same_address_twice_in_one_file_is_an_error(tmp_path):
    path = write(
        tmp_path,
        "ada@example.com,Ada,Lovelace,,,,,,,,,GB,en,GBP\nAda@Example.com,Ada,Again,,,,,,,,,GB,en,GBP\n",
    )
    err = io.StringIO()
    with pytest.raises(CommandError):
        call_command("import_customers", str(path), "--no-progress", stdout=io.StringIO(), stderr=err)
    assert "row 3, email: the same address is already on row 2" in err.getvalue()
    assert Customer.objects.count() == 0


def test_an_unknown_column_is_refused(tmp_path):
    path = tmp_path / "odd.csv"
    path.write_text("email,credit_card\nada@example.com,x\n", encoding="utf-8")
    err = io.StringIO()
    with pytest.raises(CommandError):
        call_command("import_customers", str(path), "--no-progress", stdout=io.StringIO(), stderr=err)
    assert "unknown column(s): credit_card" in err.getvalue()


def test_a_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(CommandError) as raised:
        run_import(tmp_path / "nope.csv")
    assert "no such file" in str(raised.value)


# ---------------------------------------------------------------------------------------
# Writing in batches


def rows_for(emails, last_name="Lovelace", city="London"):
    headers = ["email", "first_name", "last_name", "city", "country", "language", "currency"]
    rows = [
        {"email": email, "first_name": "Ada", "last_name": last_name, "city": city, "country": "GB"}
        | {"language": "en", "currency": "GBP"}
        for email in emails
    ]
    return {"headers": headers, "rows": rows}


def customer_writes(queries) -> dict[str, int]:
    counted = {"insert": 0, "update": 0, "change": 0}
    for query in queries:
        sql = query["sql"]
        if sql.startswith('INSERT INTO "customers_customer"'):
            counted["insert"] += 1
        elif sql.startswith('UPDATE "customers_customer"'):
            counted["update"] += 1
        elif sql.startswith('INSERT INTO "customers_customerchange"'):
            counted["change"] += 1
    return counted


@pytest.mark.parametrize("size", [3, 40])
def test_new_customers_are_written_in_one_statement_per_batch_not_one_per_row(size):
    emails = [f"new{n}@example.com" for n in range(size)]
    with CaptureQueriesContext(connection) as queries:
        report = customers_import(**rows_for(emails))
    assert report.created == size
    assert customer_writes(queries.captured_queries) == {"insert": 1, "update": 0, "change": 0}
    assert sorted(Customer.objects.values_list("email", flat=True)) == sorted(emails)
    assert Customer.objects.filter(last_name="Lovelace", city="London", country="GB").count() == size


@pytest.mark.parametrize("size", [3, 40])
def test_updated_customers_are_written_in_one_statement_per_batch_with_their_corrections(size):
    emails = [f"old{n}@example.com" for n in range(size)]
    for email in emails:
        CustomerFactory(email=email, first_name="Ada", last_name="Byron", city="London", country="GB")
    with CaptureQueriesContext(connection) as queries:
        report = customers_import(**rows_for(emails, last_name="King"), update=True)
    assert (report.created, report.updated, report.unchanged) == (0, size, 0)
    assert customer_writes(queries.captured_queries) == {"insert": 0, "update": 1, "change": 1}
    assert Customer.objects.filter(last_name="King").count() == size
    changes = CustomerChange.objects.filter(field="last_name", old_value="Byron", new_value="King", changed_by="import")
    assert changes.count() == size


def test_a_batch_size_smaller_than_the_file_writes_every_row_once(monkeypatch):
    monkeypatch.setattr(imports, "IMPORT_BATCH_SIZE", 2)
    CustomerFactory(email="grace@example.com", first_name="Ada", last_name="Byron", city="London", country="GB")
    emails = ["a@example.com", "b@example.com", "grace@example.com", "c@example.com", "d@example.com"]
    with CaptureQueriesContext(connection) as queries:
        report = customers_import(**rows_for(emails, last_name="King"), update=True)
    assert (report.created, report.updated, report.unchanged) == (4, 1, 0)
    assert customer_writes(queries.captured_queries) == {"insert": 3, "update": 1, "change": 1}
    assert Customer.objects.filter(last_name="King").count() == 5


def test_each_updated_customer_changes_only_its_own_differing_fields_and_unchanged_ones_are_counted():
    # given Ada (her last name will change), Grace (her city will change) and Linus (nothing changes)
    ada = CustomerFactory(email="ada@example.com", first_name="Ada", last_name="Byron", city="London", country="GB")
    grace = CustomerFactory(email="grace@example.com", first_name="Grace", last_name="Hopper", city="Arlington")
    linus = CustomerFactory(email="linus@example.com", first_name="Linus", last_name="Torvalds", city="Portland")
    headers = ["email", "last_name", "city"]
    rows = [
        {"email": "ada@example.com", "last_name": "King", "city": "London"},
        {"email": "grace@example.com", "last_name": "Hopper", "city": "New York"},
        {"email": "linus@example.com", "last_name": "Torvalds", "city": "Portland"},
    ]
    # when the file is imported with update
    report = customers_import(headers=headers, rows=rows, update=True)
    # then each gets exactly their corrections; columns absent from the file keep their values
    assert (report.created, report.updated, report.unchanged) == (0, 2, 1)
    for customer in (ada, grace, linus):
        customer.refresh_from_db()
    assert (ada.last_name, ada.city, ada.first_name) == ("King", "London", "Ada")
    assert (grace.last_name, grace.city, grace.first_name) == ("Hopper", "New York", "Grace")
    assert sorted(CustomerChange.objects.values_list("customer__email", "field", "old_value", "new_value")) == [
        ("ada@example.com", "last_name", "Byron", "King"),
        ("grace@example.com", "city", "Arlington", "New York"),
    ]
    assert linus.updated_at < ada.updated_at


def test_an_address_added_by_someone_else_while_importing_is_refused_naming_the_row():
    file = rows_for(["ada@example.com", "grace@example.com"])
    calls = []

    def progress(iterable):
        calls.append(1)
        if len(calls) == 1:  # existing addresses were looked up; Grace signs up meanwhile
            Customer.objects.create(email="grace@example.com", first_name="Grace")
        return iter(iterable)

    with pytest.raises(ImportRefused) as refused:
        customers_import(**file, progress=progress)
    assert [str(error) for error in refused.value.errors] == [
        "row 3, email: a customer with this address was added while the file was being imported"
    ]
    assert list(Customer.objects.values_list("email", flat=True)) == ["grace@example.com"]


@pytest.mark.parametrize("update", [False, True])
def test_checking_a_file_costs_the_same_number_of_queries_for_3_rows_or_40(update):
    def import_queries(size: int, prefix: str) -> int:
        emails = [f"{prefix}{n}@example.com" for n in range(size)]
        if update:
            for email in emails:
                CustomerFactory(email=email, last_name="Byron")
        with CaptureQueriesContext(connection) as queries:
            customers_import(**rows_for(emails, last_name="King"), update=update)
        return len(queries.captured_queries)

    assert import_queries(3, "few") == import_queries(40, "many")


def test_an_invalid_or_overlong_address_is_still_refused_by_the_row_check(tmp_path):
    path = write(tmp_path, f"{'a' * 250}@example.com,Ada,,,,,,,,,,GB,en,GBP\nada@,Ada,,,,,,,,,,GB,en,GBP\n")
    err = io.StringIO()
    with pytest.raises(CommandError):
        call_command("import_customers", str(path), "--no-progress", stdout=io.StringIO(), stderr=err)
    assert "row 2, email:" in err.getvalue() and "row 3, email:" in err.getvalue()
    assert not Customer.objects.exists()


# ---------------------------------------------------------------------------------------
# Reading the file: columns, row lengths, delimiters


def test_a_column_named_twice_is_refused_naming_the_column(tmp_path):
    path = tmp_path / "twice.csv"
    path.write_text("email,last_name,city,last_name\nada@example.com,Lovelace,London,King\n", encoding="utf-8")
    err = io.StringIO()
    with pytest.raises(CommandError, match="nothing was imported"):
        call_command("import_customers", str(path), "--no-progress", stdout=io.StringIO(), stderr=err)
    assert "row 1, header: the column 'last_name' appears twice (columns 2 and 4)" in err.getvalue()
    assert not Customer.objects.exists()


def test_a_row_with_fewer_or_more_values_than_the_header_is_refused_naming_the_row(tmp_path):
    path = tmp_path / "ragged.csv"
    path.write_text(
        "email,first_name,last_name\n"
        "ada@example.com,Ada,Lovelace\n"
        "grace@example.com,Grace\n"
        "linus@example.com,Linus,Torvalds,Portland\n",
        encoding="utf-8",
    )
    err = io.StringIO()
    with pytest.raises(CommandError, match="2 problem"):
        call_command("import_customers", str(path), "--no-progress", stdout=io.StringIO(), stderr=err)
    report = err.getvalue()
    assert "row 3, row: 2 values for 3 columns: fewer values than the header" in report
    assert "row 4, row: 4 values for 3 columns: more values than the header" in report
    assert "row 2" not in report
    assert not Customer.objects.exists()


@pytest.mark.parametrize(("delimiter", "name"), [(";", "semicolon"), ("\t", "tab"), ("|", "vertical bar")])
def test_a_semicolon_tab_or_bar_separated_file_is_read_and_the_command_says_which(tmp_path, delimiter, name):
    path = tmp_path / "spreadsheet.csv"
    lines = [
        ["email", "first_name", "last_name", "company", "country"],
        ["ada@example.com", "Ada", "Lovelace", "Analytical, Ltd", "GB"],
        ["grace@example.com", "Grace", "Hopper", "", "US"],
    ]
    path.write_text("\n".join(delimiter.join(cells) for cells in lines) + "\n", encoding="utf-8")
    out, _ = run_import(path)
    assert f"read as {name}-separated values" in out
    assert "2 created" in out
    ada = Customer.objects.by_email("ada@example.com").get()
    assert (ada.last_name, ada.company, ada.country) == ("Lovelace", "Analytical, Ltd", "GB")


def test_a_comma_separated_file_says_nothing_about_its_delimiter(tmp_path):
    path = write(tmp_path, "ada@example.com,Ada,Lovelace,,,,,,,,,GB,en,GBP\n")
    out, _ = run_import(path)
    assert "separated values" not in out


def test_a_file_with_only_an_email_column_is_read(tmp_path):
    path = tmp_path / "addresses.csv"
    path.write_text("email\nada@example.com\ngrace@example.com\n", encoding="utf-8")
    out, _ = run_import(path)
    assert "2 created" in out


# ---------------------------------------------------------------------------------------
# Blank cells in an --update import

BLANKS_HEADER = "email,first_name,last_name,company,city\n"


def test_blank_cells_in_an_update_import_leave_the_fields_as_they_are(tmp_path):
    # given Ada, whose company and city are on file
    ada = CustomerFactory(
        email="ada@example.com", first_name="Ada", last_name="Byron", company="Analytical", city="London"
    )
    path = tmp_path / "partial.csv"
    path.write_text(BLANKS_HEADER + "ada@example.com,,King,,\n", encoding="utf-8")
    # when a file with only her new last name is imported with --update
    out, _ = run_import(path, "--update")
    # then only the last name changes, and only that correction is recorded
    assert "1 updated" in out
    ada.refresh_from_db()
    assert (ada.first_name, ada.last_name, ada.company, ada.city) == ("Ada", "King", "Analytical", "London")
    assert list(CustomerChange.objects.values_list("field", "old_value", "new_value")) == [
        ("last_name", "Byron", "King")
    ]


def test_clear_blank_makes_blank_cells_in_an_update_import_clear_the_fields(tmp_path):
    ada = CustomerFactory(
        email="ada@example.com", first_name="Ada", last_name="Byron", company="Analytical", city="London"
    )
    path = tmp_path / "partial.csv"
    path.write_text(BLANKS_HEADER + "ada@example.com,Ada,King,,\n", encoding="utf-8")
    run_import(path, "--update", "--clear-blank")
    ada.refresh_from_db()
    assert (ada.first_name, ada.last_name, ada.company, ada.city) == ("Ada", "King", "", "")
    assert sorted(CustomerChange.objects.values_list("field", "old_value", "new_value")) == [
        ("city", "London", ""),
        ("company", "Analytical", ""),
        ("last_name", "Byron", "King"),
    ]


def test_clear_blank_without_update_is_refused(tmp_path):
    path = write(tmp_path, "ada@example.com,Ada,Lovelace,,,,,,,,,GB,en,GBP\n")
    with pytest.raises(CommandError, match="--clear-blank only applies to an --update import"):
        run_import(path, "--clear-blank")
    assert not Customer.objects.exists()


# ---------------------------------------------------------------------------------------
# Erased customers' former addresses


@pytest.fixture
def erased_augusta(django_user_model):
    from privacy.services import customer_erase
    from tests.privacy.people import staff_in

    augusta = CustomerFactory(email="augusta@example.com", first_name="Augusta")
    customer_erase(customer=augusta, staff_user=staff_in(django_user_model, "Privacy officer", "olga-officer"))
    return augusta


@pytest.mark.parametrize("update", [False, True])
def test_a_row_with_an_erased_customers_former_address_is_refused_saying_why(tmp_path, erased_augusta, update):
    path = tmp_path / "old-crm.csv"
    path.write_text(
        "email,first_name,last_name\nlinus@example.com,Linus,Torvalds\n AUGUSTA@example.com ,Augusta,King\n",
        encoding="utf-8",
    )
    err = io.StringIO()
    with pytest.raises(CommandError, match="nothing was imported"):
        call_command(
            "import_customers",
            str(path),
            *(["--update"] if update else []),
            "--no-progress",
            stdout=io.StringIO(),
            stderr=err,
        )
    assert err.getvalue().splitlines() == [
        "row 3, email: a customer with this address asked for their data to be erased, and it was: "
        "the address is not given a new customer record (only its hash is kept, to recognise it)"
    ]
    assert list(Customer.objects.values_list("pk", flat=True)) == [erased_augusta.pk]


def test_the_erased_address_check_asks_the_one_lookup_for_each_new_address(monkeypatch, erased_augusta):
    from privacy import selectors as services

    asked = []
    lookup = services.customer_address_was_erased

    def spy(email, **kwargs):
        asked.append(email)
        return lookup(email, **kwargs)

    monkeypatch.setattr(services, "customer_address_was_erased", spy)
    with pytest.raises(ImportRefused):
        customers_import(**rows_for(["linus@example.com", "augusta@example.com"]))
    assert asked == ["linus@example.com", "augusta@example.com"]


# ---------------------------------------------------------------------------------------
# All or nothing, in short transactions


def database_state():
    return {
        "customers": sorted(
            Customer.objects.values_list("email", "first_name", "last_name", "city", "company", "erased_at")
        ),
        "corrections": sorted(CustomerChange.objects.values_list("customer__email", "field", "old_value", "new_value")),
    }


def test_an_import_that_fails_part_way_leaves_the_database_as_before(monkeypatch):
    # given Grace and Barbara on file, and a file whose first batch updates Grace and adds Ada
    monkeypatch.setattr(imports, "IMPORT_BATCH_SIZE", 2)
    CustomerFactory(email="grace@example.com", first_name="Grace", last_name="Hopper", city="Arlington")
    CustomerFactory(email="barbara@example.com", first_name="Barbara", last_name="Liskov", city="Boston")
    before = database_state()
    file = rows_for(
        ["ada@example.com", "grace@example.com", "linus@example.com", "barbara@example.com", "edsger@example.com"],
        last_name="King",
    )
    seen_while_writing = []
    passes = []

    def progress(rows):
        passes.append(rows)  # the first pass checks the file, the second writes it
        for index, row in enumerate(rows):
            if len(passes) == 2 and index == 2:
                # The first batch is committed; Linus signs up before the second is written.
                seen_while_writing.append(Customer.objects.by_email("ada@example.com").exists())
                Customer.objects.create(email="linus@example.com", first_name="Linus")
            yield row

    # when the second batch fails
    with pytest.raises(ImportRefused) as refused:
        customers_import(**file, update=True, progress=progress)

    # then what the first batch wrote is taken back, and Linus's own sign-up stays
    assert seen_while_writing == [True]
    assert [str(error) for error in refused.value.errors] == [
        "row 4, email: a customer with this address was added while the file was being imported"
    ]
    after = database_state()
    assert [c for c in after["customers"] if c[0] != "linus@example.com"] == before["customers"]
    assert after["corrections"] == before["corrections"] == []


def test_undoing_a_failed_import_keeps_a_change_someone_else_made_meanwhile(monkeypatch):
    monkeypatch.setattr(imports, "IMPORT_BATCH_SIZE", 1)
    grace = CustomerFactory(email="grace@example.com", first_name="Grace", last_name="Hopper", city="Arlington")
    file = rows_for(["grace@example.com", "linus@example.com"], last_name="King", city="New York")
    passes = []

    def progress(rows):
        passes.append(rows)  # the first pass checks the file, the second writes it
        for index, row in enumerate(rows):
            if len(passes) == 2 and index == 1:
                # Grace's import row is committed; she corrects her city herself, and Linus signs up.
                Customer.objects.filter(pk=grace.pk).update(city="Seattle")
                Customer.objects.create(email="linus@example.com", first_name="Linus")
            yield row

    with pytest.raises(ImportRefused):
        customers_import(**file, update=True, progress=progress)
    grace.refresh_from_db()
    assert (grace.last_name, grace.city) == ("Hopper", "Seattle")
    assert not CustomerChange.objects.exists()


def test_a_database_error_part_way_undoes_the_import_and_is_raised(monkeypatch):
    from django.db import OperationalError

    monkeypatch.setattr(imports, "IMPORT_BATCH_SIZE", 2)
    written = []
    real_bulk_create = Customer.objects.bulk_create

    def failing_bulk_create(objs, *args, **kwargs):
        if written:
            raise OperationalError("disk I/O error")
        written.append(len(objs))
        return real_bulk_create(objs, *args, **kwargs)

    monkeypatch.setattr(Customer.objects, "bulk_create", failing_bulk_create)
    with pytest.raises(OperationalError):
        customers_import(**rows_for(["ada@example.com", "grace@example.com", "linus@example.com"]))
    assert written == [2]
    assert not Customer.objects.exists()
