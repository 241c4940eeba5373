"""
The import's fast row check (customers.import_check) against CustomerImportRowForm: the same
rows through both, the same cleaned values, and every row it does not vouch for is the form's
to judge, so the messages are the form's. If a rule of the form or the model changes, these
fail rather than let the two drift apart.
"""

import io

import pytest
from django.core.management import CommandError, call_command
from phonenumber_field.phonenumber import PhoneNumber

from customers import import_check, imports
from customers.forms import IMPORT_FIELDS, CustomerImportRowForm
from customers.import_check import FastRowCheck
from customers.imports import ImportRefused, customers_import
from customers.models import Customer

BASE = {
    "email": "ada@example.com",
    "first_name": "Ada",
    "last_name": "Lovelace",
    "job_title": "Engineer",
    "company": "Analytical Ltd",
    "phone": "+44 20 7946 0958",
    "address_line1": "1 Main St",
    "address_line2": "",
    "city": "London",
    "region": "",
    "postal_code": "EC1A 1AA",
    "country": "GB",
    "language": "en",
    "currency": "GBP",
}

# Rows the fast check must vouch for, with the form's cleaned values.
GOOD = [
    {},
    {"email": "  Ada.Lovelace@Example.COM  "},
    {"email": "ADA+tag@sub.example.co.uk"},
    {"email": "o'brien@example.ie"},
    {"email": "ada@bücher.de"},
    {"phone": "+44 20 7946 0958\x00"},  # phonenumbers ignores what follows the number
    {"first_name": "Zoë", "last_name": "Łukasiewicz", "city": "Kraków", "company": "東京株式会社"},
    {"first_name": "  Ada  ", "city": "\u00a0London\u3000", "company": "\t Byte & Co \t"},
    {"first_name": "   ", "job_title": "", "address_line2": "Flat 2"},
    {"first_name": "x" * 150, "company": "y" * 200, "postal_code": "z" * 20, "city": "é" * 100},
    {"company": "1234 5678 9012 3456"},  # 16 digits that fail the Luhn check: not a card number
    {"address_line1": "PO Box 1234567"},
    {"phone": ""},
    {"phone": "   "},
    {"phone": "+442079460958"},
    {"phone": " +44 (0)20 7946 0958 "},
    {"phone": "+1-202-555-0143"},
    {"phone": "+1 (202) 555-0143"},
    {"phone": "+33 1 42 68 53 00"},
    {"phone": "+49 30 90180000"},
    {"phone": "tel:+44-20-7946-0958"},
    {"phone": "+44 20 7946 0958 ext. 123"},
    {"language": ""},
    {"language": "de"},
    {"language": "zh-hans"},
    {"country": "", "currency": "", "language": ""},
    {"country": "US", "currency": "USD", "region": "VA"},
    {"country": "FR", "currency": "EUR", "language": "fr"},
    {"currency": "XXX"},
]

# Rows it must leave to the form (each bad, or at least not one it can be sure of).
BAD = [
    {"email": ""},
    {"email": "   "},
    {"email": "not-an-address"},
    {"email": "ada@"},
    {"email": "ada@example"},
    {"email": "a" * 250 + "@example.com"},
    {"email": "ada\x00@example.com"},
    {"email": "zoë@example.com"},
    {"email": "ada@exa mple.com"},
    {"first_name": "x" * 151},
    {"postal_code": "123456789012345678901"},
    {"company": "4111 1111 1111 1111"},
    {"company": "card 4111-1111-1111-1111 here"},
    {"address_line1": "1 Main St\nFlat 2"},
    {"address_line1": "1 Main St\rFlat 2"},
    {"city": "Lon\x00don"},
    {"phone": "12345"},
    {"phone": "020 7946 0958"},
    {"phone": "+44 20 7946 095"},
    {"phone": "+999 123"},
    {"phone": "abc"},
    {"phone": "+" + "1" * 200},
    {"country": "gb"},
    {"country": " GB"},
    {"country": "ZZ"},
    {"country": "United Kingdom"},
    {"language": "xx"},
    {"language": "EN"},
    {"language": " de"},
    {"currency": "gbp"},
    {"currency": "ABC"},
    {"currency": "GB"},
    {"first_name": 42},
]


def form_result(data):
    form = CustomerImportRowForm(data=data)
    valid = form.is_valid()
    return valid, form.cleaned_data, [(name, list(errors)) for name, errors in form.errors.items()]


def same_values(fast, form_cleaned):
    assert list(fast) == list(form_cleaned)
    for name in IMPORT_FIELDS:
        ours, theirs = fast[name], form_cleaned[name]
        assert type(ours) is type(theirs), name
        assert ours == theirs, name
        if isinstance(ours, PhoneNumber):
            assert (str(ours), ours.raw_input, ours.as_e164) == (str(theirs), theirs.raw_input, theirs.as_e164)


def checker():
    check = FastRowCheck(CustomerImportRowForm(data={}))
    assert check.enabled, "the form or model gained a rule the fast check does not know: teach it"
    return check


@pytest.mark.parametrize("change", GOOD, ids=repr)
def test_the_fast_check_vouches_for_a_good_row_with_the_forms_cleaned_values(change):
    data = {**BASE, **change}
    valid, cleaned, errors = form_result(data)
    assert (valid, errors) == (True, [])
    check = checker()
    fast = check.clean(data)
    assert fast is not None
    same_values(fast, cleaned)
    if fast["phone"]:  # COPY writes what the model field would store
        assert check.stored_phone(fast["phone"]) == Customer._meta.get_field("phone").get_prep_value(cleaned["phone"])


@pytest.mark.parametrize("change", BAD, ids=repr)
def test_the_fast_check_leaves_every_bad_or_unusual_row_to_the_form(change):
    data = {**BASE, **change}
    valid, cleaned, _errors = form_result(data)
    fast = checker().clean(data)
    # Never a row the form refuses; an accepted one only with the form's values.
    assert fast is None or valid
    if fast is not None:
        same_values(fast, cleaned)


def test_a_bad_row_of_each_kind_is_refused_by_the_form():
    """BAD is bad for the form too (except the non-string value, which no CSV file holds)."""
    refused = [change for change in BAD if not form_result({**BASE, **change})[0]]
    assert len(refused) >= len(BAD) - 1


@pytest.mark.parametrize(
    "data",
    [
        {"email": "ada@example.com"},  # columns absent from the file
        {"email": "ada@example.com", "language": None, "phone": None},
        {"email": "Ada@Example.com", "first_name": "Ada", "country": "DE"},
    ],
    ids=repr,
)
def test_absent_columns_give_the_forms_defaults(data):
    valid, cleaned, _errors = form_result(data)
    fast = checker().clean(data)
    assert valid and fast is not None
    same_values(fast, cleaned)
    assert fast["language"] == "en"


def test_a_phone_number_is_parsed_once_however_many_rows_carry_it(monkeypatch):
    parsed = []
    original = PhoneNumber.from_string.__func__

    def counting(cls, phone_number, region=None):
        parsed.append(phone_number)
        return original(cls, phone_number, region)

    check = checker()
    monkeypatch.setattr(PhoneNumber, "from_string", classmethod(counting))
    for n in range(3):
        assert check.clean({**BASE, "email": f"a{n}@example.com"}) is not None
    assert parsed == ["+44 20 7946 0958"]


def test_the_fast_check_is_off_for_a_field_with_a_rule_it_does_not_know(monkeypatch):
    form = CustomerImportRowForm(data={})
    form.fields["city"].validators.append(lambda value: None)
    assert FastRowCheck(form).enabled is False
    assert FastRowCheck(form).clean(BASE) is None


# The same files through the import with the fast check and with the form alone.

HEADER = ",".join(BASE) + "\n"


def csv_line(row):
    return ",".join(f'"{row[name]}"' if isinstance(row[name], str) else str(row[name]) for name in BASE) + "\n"


def import_file(tmp_path, body, *, fast):
    path = tmp_path / f"customers-{fast}.csv"
    path.write_text(HEADER + body, encoding="utf-8")
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("import_customers", str(path), "--no-progress", stdout=out, stderr=err)
        outcome = out.getvalue()
    except CommandError as error:
        outcome = f"refused: {error}"
    values = sorted(Customer.objects.values_list(*IMPORT_FIELDS, "notes", "link_generation"))
    return outcome.replace(str(path), "FILE"), err.getvalue(), values


def csv_rows(changes):
    rows = []
    for n, change in enumerate(changes):
        row = {**BASE, "email": f"customer{n}@example.com", **change}
        if not all(isinstance(value, str) for value in row.values()):
            continue  # a file holds strings
        rows.append(row)
    return rows


def both_ways(tmp_path, monkeypatch, body):
    fast = import_file(tmp_path, body, fast=True)
    Customer.objects.all().delete()
    with monkeypatch.context() as patch:
        patch.setattr(import_check.FastRowCheck, "clean", lambda self, data: None)
        slow = import_file(tmp_path, body, fast=False)
    return fast, slow


@pytest.mark.django_db
@pytest.mark.parametrize("copy", [False, True], ids=["batches", "copy"])
def test_a_good_file_gives_the_same_customers_with_the_fast_check_and_without(tmp_path, monkeypatch, copy):
    if copy:
        from django.db import connection

        if connection.vendor != "postgresql":
            pytest.skip("COPY is PostgreSQL's")
        monkeypatch.setattr(imports, "IMPORT_COPY_MIN_ROWS", 1)
        monkeypatch.setattr(imports, "IMPORT_CHECK_CHUNK_SIZE", 4)
    body = "".join(csv_line(row) for row in csv_rows(GOOD))
    fast, slow = both_ways(tmp_path, monkeypatch, body)
    assert fast == slow
    assert f"{len(csv_rows(GOOD))} created" in fast[0]


@pytest.mark.django_db
@pytest.mark.parametrize("copy", [False, True], ids=["batches", "copy"])
def test_a_file_with_every_kind_of_bad_row_gives_the_same_messages_with_the_fast_check_and_without(
    tmp_path, monkeypatch, copy
):
    if copy:
        from django.db import connection

        if connection.vendor != "postgresql":
            pytest.skip("COPY is PostgreSQL's")
        monkeypatch.setattr(imports, "IMPORT_COPY_MIN_ROWS", 1)
        monkeypatch.setattr(imports, "IMPORT_CHECK_CHUNK_SIZE", 4)
    rows = csv_rows(GOOD[:5] + BAD + GOOD[5:] + [{"email": "CUSTOMER0@example.com"}])
    body = "".join(csv_line(row) for row in rows)
    fast, slow = both_ways(tmp_path, monkeypatch, body)
    assert fast == slow
    assert fast[0].startswith("refused: ") and fast[2] == []
    messages = fast[1].splitlines()
    assert len(messages) >= len(BAD) - 2
    assert f"row {len(rows) + 1}, email: the same address is already on row 2" in messages


@pytest.mark.django_db
def test_an_import_checks_good_rows_without_binding_the_form(monkeypatch):
    bound = []
    original = imports._RowChecker._bound_form

    def counting(self, data, instance):
        bound.append(data["email"])
        return original(self, data, instance)

    monkeypatch.setattr(imports._RowChecker, "_bound_form", counting)
    rows = [{**BASE, "email": f"c{n}@example.com"} for n in range(5)] + [{**BASE, "email": "bad"}]
    with pytest.raises(ImportRefused) as refused:
        customers_import(headers=list(BASE), rows=rows)
    assert bound == ["bad"]
    assert [str(e) for e in refused.value.errors] == ["row 7, email: Enter a valid email address."]


@pytest.mark.django_db
def test_a_value_in_a_column_the_header_does_not_name_is_not_imported_either_way(monkeypatch):
    rows = [{"email": "ada@example.com", "first_name": "Ada", "city": "x" * 500}]
    customers_import(headers=["email", "first_name"], rows=rows)
    assert Customer.objects.values_list("first_name", "city").get() == ("Ada", "")
