"""
A large file on PostgreSQL: checked in one streaming pass, staged with COPY and moved into the
customer table with one statement (customers.imports._import_by_copy). The same messages and
the same result as the batch path; all or nothing by one transaction.
"""

import io

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from consents.models import ConsentEvent
from customers import imports
from customers.imports import ImportRefused, customers_import
from customers.models import Customer, CustomerChange
from tests.factories import CustomerFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

HEADER = (
    "email,first_name,last_name,job_title,company,phone,address_line1,address_line2,"
    "city,region,postal_code,country,language,currency\n"
)
GOOD = (
    "ada@example.com,Ada,Lovelace,Engineer,Analytical Ltd,+44 20 7946 0958,1 Main St,,London,,EC1A 1AA,GB,en,GBP\n"
    "Grace@Example.com,Grace,Hopper,,,,,,Arlington,VA,22201,US,,USD\n"
    "linus@example.com,Linus,Torvalds,,,,,,,,,,fr,\n"
)
BAD = (
    "ada@example.com,Ada,Lovelace,,,,,,,,,GB,en,GBP\n"
    "not-an-address,Bad,Row,,,,,,,,,GB,en,GBP\n"
    "grace@example.com,Grace,Hopper,,,12345,,,,,,ZZ,en,usd\n"
    "ADA@example.com,Ada,Again,,4111 1111 1111 1111,,,,,,,GB,xx,GBP\n"
    "barbara@example.com,Barbara,Liskov,,,,,,,,,,en,GBP\n"
)


@pytest.fixture
def copy_path(monkeypatch):
    """Every file goes through COPY, however small; returns a switch back to the batch path."""
    monkeypatch.setattr(imports, "IMPORT_COPY_MIN_ROWS", 1)
    monkeypatch.setattr(imports, "IMPORT_CHECK_CHUNK_SIZE", 2)
    return lambda: monkeypatch.setattr(imports, "IMPORT_COPY_MIN_ROWS", 10**9)


def run_import(tmp_path, body, *args):
    path = tmp_path / "customers.csv"
    path.write_text(HEADER + body, encoding="utf-8")
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("import_customers", str(path), *args, "--no-progress", stdout=out, stderr=err)
    except CommandError as error:
        return f"refused: {error}", err.getvalue()
    return out.getvalue(), err.getvalue()


def customers():
    fields = list(imports.IMPORT_FIELDS)
    return sorted(Customer.objects.values_list(*fields, "erased_at", "notes", "link_generation"))


def test_a_good_file_gives_the_same_customers_in_file_order_through_copy_as_in_batches(tmp_path, copy_path):
    # given the file imported through COPY
    out, _ = run_import(tmp_path, GOOD)
    assert "3 created" in out
    through_copy = customers()
    in_file_order = list(Customer.objects.order_by("pk").values_list("email", flat=True))
    assert len({c.public_id for c in Customer.objects.all()}) == 3
    # when the same file is imported in batches into an empty table
    Customer.objects.all().delete()
    copy_path()
    run_import(tmp_path, GOOD)
    # then every value is the same, and the ids follow the file
    assert customers() == through_copy
    assert in_file_order == ["ada@example.com", "grace@example.com", "linus@example.com"]
    ada = Customer.objects.by_email("ada@example.com").get()
    assert (str(ada.phone), ada.country.code, ada.updated_at is not None) == ("+442079460958", "GB", True)


def test_a_file_with_bad_rows_gives_the_same_messages_through_copy_and_imports_nothing(tmp_path, copy_path):
    CustomerFactory(email="barbara@example.com", first_name="Barbara")
    before = customers()
    through_copy = run_import(tmp_path, BAD)
    assert customers() == before
    copy_path()
    in_batches = run_import(tmp_path, BAD)
    assert through_copy == in_batches
    lines = through_copy[1].splitlines()
    assert "row 3, email: Enter a valid email address." in lines
    assert "row 5, email: the same address is already on row 2" in lines
    assert "row 6, email: a customer with this address already exists (use --update to update it)" in lines
    assert through_copy[0].startswith("refused: ") and "nothing was imported" in through_copy[0]


def test_a_bad_row_after_many_good_chunks_refuses_the_whole_file(tmp_path, copy_path):
    body = "".join(f"reader{n}@example.com,Reader,{n},,,,,,,,,GB,en,GBP\n" for n in range(9))
    out, err = run_import(tmp_path, body + "reader0@example.com,Again,,,,,,,,,,GB,en,GBP\n")
    assert out.startswith("refused: 1 problem")
    assert err.splitlines() == ["row 11, email: the same address is already on row 2"]
    assert not Customer.objects.exists()


def test_an_update_through_copy_records_the_corrections_and_adds_the_new_customers(tmp_path, copy_path):
    ada = CustomerFactory(email="ada@example.com", first_name="Ada", last_name="Byron", city="London")
    out, _ = run_import(
        tmp_path,
        "ada@example.com,,King,,,,,,,,,,,\ngrace@example.com,Grace,Hopper,,,,,,,,,US,en,USD\n",
        "--update",
    )
    assert "1 created, 1 updated, 0 unchanged" in out
    ada.refresh_from_db()
    assert (ada.first_name, ada.last_name, ada.city) == ("Ada", "King", "London")
    assert list(CustomerChange.objects.values_list("field", "old_value", "new_value")) == [
        ("last_name", "Byron", "King")
    ]


def test_an_address_added_while_the_file_is_written_refuses_it_whole_naming_the_row(copy_path):
    rows = [{"email": f"{name}@example.com", "first_name": name.title()} for name in ("ada", "grace", "linus")]

    def progress(items):
        for index, item in enumerate(items):
            if index == 2:  # Ada and Grace are checked and staged; Grace signs up meanwhile
                Customer.objects.create(email="GRACE@example.com", first_name="Grace")
            yield item

    with pytest.raises(ImportRefused) as refused:
        customers_import(headers=["email", "first_name"], rows=rows, progress=progress)
    assert [str(error) for error in refused.value.errors] == [
        "row 3, email: a customer with this address was added while the file was being imported"
    ]
    assert not Customer.objects.filter(email__in=["ada@example.com", "linus@example.com"]).exists()


def test_consent_columns_through_copy_are_recorded_once_the_customers_are_written(tmp_path, copy_path):
    from tests.consents.test_import import EVIDENCE

    path = tmp_path / "consent.csv"
    path.write_text(
        "email,first_name,consent_newsletter\nada@example.com,Ada,yes\ngrace@example.com,Grace,\n"
        "linus@example.com,Linus,no\n",
        encoding="utf-8",
    )
    out = io.StringIO()
    call_command("import_customers", str(path), "--evidence", EVIDENCE, "--no-progress", stdout=out)
    assert "3 created" in out.getvalue()
    assert sorted(ConsentEvent.objects.values_list("customer__email", "granted")) == [
        ("ada@example.com", True),
        ("linus@example.com", False),
    ]


def test_without_the_right_to_create_temporary_tables_a_large_file_is_written_in_batches(monkeypatch, copy_path):
    monkeypatch.setattr(imports, "_may_create_temporary_tables", lambda: False)
    staged = []
    monkeypatch.setattr(imports, "_import_by_copy", lambda **kwargs: staged.append(kwargs))
    report = customers_import(headers=["email"], rows=[{"email": "ada@example.com"}])
    assert (report.created, staged) == (1, [])


def test_the_runtime_role_may_create_temporary_tables():
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_user, has_database_privilege(current_database(), 'TEMPORARY')")
        assert cursor.fetchone()[1] is True
    assert imports._may_create_temporary_tables()


@pytest.mark.django_db(transaction=True)
def test_migrate_grants_temporary_tables_even_where_public_lost_the_right(database_owner):
    from common import database_roles

    runtime_role = connection.settings_dict["USER"]
    with database_owner(), connection.cursor() as cursor:
        cursor.execute("SELECT current_database()")
        (database,) = cursor.fetchone()
        quoted = connection.ops.quote_name(database)
        cursor.execute(f"REVOKE TEMPORARY ON DATABASE {quoted} FROM PUBLIC, {connection.ops.quote_name(runtime_role)}")
        try:
            cursor.execute("SELECT has_database_privilege(%s, current_database(), 'TEMPORARY')", [runtime_role])
            assert cursor.fetchone()[0] is False
            assert database_roles.grant_temporary_tables(connection, runtime_role=runtime_role) is True
        finally:
            cursor.execute(f"GRANT TEMPORARY ON DATABASE {quoted} TO PUBLIC")


def test_a_file_that_is_not_utf8_names_the_byte(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes(b"email,city\nada@example.com,M\xfcnchen\n")
    with pytest.raises(CommandError, match=r"not UTF-8 text \(invalid start byte at byte 28\); nothing was imported"):
        call_command("import_customers", str(path), "--no-progress", stdout=io.StringIO(), stderr=io.StringIO())


@pytest.fixture
def check_workers(monkeypatch, copy_path):
    """Every file through COPY is checked by 2 worker processes; returns a switch back to one."""
    monkeypatch.setattr(imports, "IMPORT_PARALLEL_MIN_ROWS", 1)
    monkeypatch.setattr(imports, "_check_workers", lambda rows, *, update: 0 if update else 2)
    return lambda: monkeypatch.setattr(imports, "_check_workers", lambda rows, *, update: 0)


def test_worker_processes_give_the_same_customers_and_messages_as_one_process(tmp_path, check_workers, monkeypatch):
    started = []
    monkeypatch.setattr(imports, "_check_in_workers", _counting(imports._check_in_workers, started))
    body = GOOD + "".join(f"reader{n}@example.com,Reader,{n},,,+44 20 7946 {n:04d},,,,,,GB,,GBP\n" for n in range(6))
    body += 'tab@example.com,"Back\\slash \\N",Tab,,"a\tb",,,,,,,GB,en,GBP\n'  # what COPY's text format escapes
    good_in_workers = run_import(tmp_path, body)
    values_in_workers = customers()
    in_file_order = list(Customer.objects.order_by("pk").values_list("email", flat=True))
    Customer.objects.all().delete()
    CustomerFactory(email="barbara@example.com", first_name="Barbara")
    bad_in_workers = run_import(tmp_path, BAD + body + "READER3@example.com,,,,,,,,,,,,,\n")
    assert len(started) == 2
    check_workers()
    Customer.objects.exclude(email="barbara@example.com").delete()
    assert run_import(tmp_path, BAD + body + "READER3@example.com,,,,,,,,,,,,,\n") == bad_in_workers
    Customer.objects.all().delete()
    assert run_import(tmp_path, body) == good_in_workers
    assert customers() == values_in_workers
    assert len(started) == 2
    assert "10 created" in good_in_workers[0]
    assert in_file_order[:3] == ["ada@example.com", "grace@example.com", "linus@example.com"]
    tab = Customer.objects.get(email="tab@example.com")
    assert (tab.first_name, tab.company) == ("Back\\slash \\N", "a\tb")
    lines = bad_in_workers[1].splitlines()
    assert "row 3, email: Enter a valid email address." in lines
    assert "row 17, email: the same address is already on row 13" in lines


def test_a_worker_process_that_fails_fails_the_import_and_writes_nothing(tmp_path, check_workers, monkeypatch):
    def failing(self, line, row, instance):
        raise RuntimeError("worker failed")

    monkeypatch.setattr(imports._RowChecker, "clean", failing)  # the workers are forked: they have it too
    with pytest.raises(RuntimeError, match="worker failed"):
        run_import(tmp_path, GOOD)
    assert not Customer.objects.exists()


def _counting(function, calls):
    def counted(*args, **kwargs):
        calls.append(1)
        return function(*args, **kwargs)

    return counted
