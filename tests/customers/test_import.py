import io

import pytest
from django.core.management import CommandError, call_command

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
