import io

import pytest
from django.core.management import CommandError, call_command

from consents.models import Consent, ConsentEvent, PolicyVersion
from consents.selectors import customers_consenting_to
from customers.models import Customer
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db

HEADER = "email,first_name,last_name,consent_newsletter,consent_promotions,consent_market_research\n"
EVIDENCE = "Webshop signup checkbox, 2019-2023 export from the old CRM"


def write(tmp_path, body, header=HEADER):
    path = tmp_path / "customers.csv"
    path.write_text(header + body, encoding="utf-8")
    return path


def run_import(path, *args):
    out, err = io.StringIO(), io.StringIO()
    call_command("import_customers", str(path), *args, "--no-progress", stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_consent_columns_record_events_with_source_import_and_the_evidence_note(tmp_path):
    path = write(
        tmp_path,
        "ada@example.com,Ada,Lovelace,yes,no,\n"  # consents, said no to promotions, never asked about research
        "linus@example.com,Linus,Torvalds,,,\n",  # never asked at all
    )

    out, _ = run_import(path, "--evidence", EVIDENCE)

    assert "2 created" in out
    assert "1 consents granted" in out
    assert "1 consents withdrawn" in out
    ada = Customer.objects.by_email("ada@example.com").get()
    events = {e.purpose.code: e for e in ConsentEvent.objects.filter(customer=ada).select_related("purpose")}
    assert set(events) == {"newsletter", "promotions"}
    assert events["newsletter"].granted is True
    assert events["promotions"].granted is False
    for event in events.values():
        assert event.source == "import"
        assert event.method == "import"
        assert event.note == EVIDENCE
        assert event.policy_version == PolicyVersion.objects.current()
        assert event.wording == event.purpose.wording
    assert not Consent.objects.filter(customer=ada, purpose__code="market_research").exists()
    linus = Customer.objects.by_email("linus@example.com").get()
    assert not ConsentEvent.objects.filter(customer=linus).exists()


def test_consent_columns_without_evidence_import_nothing(tmp_path):
    path = write(tmp_path, "ada@example.com,Ada,Lovelace,yes,,\n")
    with pytest.raises(CommandError, match="nothing was imported"):
        run_import(path)
    assert not Customer.objects.exists()
    assert not ConsentEvent.objects.exists()


def test_the_missing_evidence_is_explained(tmp_path):
    path = write(tmp_path, "ada@example.com,Ada,Lovelace,yes,,\n")
    err = io.StringIO()
    with pytest.raises(CommandError):
        call_command("import_customers", str(path), "--no-progress", stdout=io.StringIO(), stderr=err)
    assert "--evidence" in err.getvalue()


def test_a_bad_consent_value_is_an_error_naming_row_and_column_and_imports_nothing(tmp_path):
    path = write(
        tmp_path,
        "ada@example.com,Ada,Lovelace,yes,,\ngrace@example.com,Grace,Hopper,maybe,,\n",
    )
    err = io.StringIO()
    with pytest.raises(CommandError, match="nothing was imported"):
        call_command(
            "import_customers", str(path), "--evidence", EVIDENCE, "--no-progress", stdout=io.StringIO(), stderr=err
        )
    assert "row 3, consent_newsletter" in err.getvalue()
    assert "yes, no, or leave it empty" in err.getvalue()
    assert not Customer.objects.exists()
    assert not ConsentEvent.objects.exists()


def test_an_unknown_purpose_column_is_refused(tmp_path):
    path = write(tmp_path, "ada@example.com,yes\n", header="email,consent_telepathy\n")
    with pytest.raises(CommandError):
        run_import(path, "--evidence", EVIDENCE)
    assert not Customer.objects.exists()


def test_values_are_read_without_regard_to_case_or_spaces(tmp_path):
    path = write(tmp_path, "ada@example.com,Ada,Lovelace, YES ,No,\n")
    run_import(path, "--evidence", EVIDENCE)
    assert customers_consenting_to("newsletter").count() == 1


def test_reimporting_the_same_answers_records_nothing_new(tmp_path):
    CustomerFactory(email="ada@example.com")
    path = write(tmp_path, "ada@example.com,Ada,Lovelace,yes,,\n")
    run_import(path, "--update", "--evidence", EVIDENCE)
    run_import(path, "--update", "--evidence", EVIDENCE)
    assert ConsentEvent.objects.count() == 1


def test_a_later_no_withdraws_an_earlier_yes(tmp_path):
    path = write(tmp_path, "ada@example.com,Ada,Lovelace,yes,,\n")
    run_import(path, "--evidence", EVIDENCE)
    path = write(tmp_path, "ada@example.com,Ada,Lovelace,no,,\n")
    run_import(path, "--update", "--evidence", "Customer letter of 3 March, scanned ref L-88")
    assert not customers_consenting_to("newsletter").exists()
    assert ConsentEvent.objects.count() == 2


def test_a_file_without_consent_columns_needs_no_evidence(tmp_path):
    path = write(tmp_path, "ada@example.com,Ada,Lovelace\n", header="email,first_name,last_name\n")
    out, _ = run_import(path)
    assert "1 created" in out
    assert not ConsentEvent.objects.exists()


def test_consent_columns_reach_the_right_customers_across_write_batches(tmp_path, monkeypatch):
    from customers import services

    monkeypatch.setattr(services, "IMPORT_BATCH_SIZE", 2)
    CustomerFactory(email="grace@example.com", first_name="Grace", last_name="Hopper")
    path = write(
        tmp_path,
        "ada@example.com,Ada,Lovelace,yes,,\n"
        "grace@example.com,Grace,Hopper,no,yes,\n"
        "linus@example.com,Linus,Torvalds,,,\n"
        "barbara@example.com,Barbara,Liskov,,,yes\n"
        "edsger@example.com,Edsger,Dijkstra,yes,yes,yes\n",
    )

    out, _ = run_import(path, "--update", "--evidence", EVIDENCE)

    assert "4 created, 0 updated, 1 unchanged" in out
    decisions = sorted(
        ConsentEvent.objects.values_list("customer__email", "purpose__code", "granted"),
    )
    assert decisions == [
        ("ada@example.com", "newsletter", True),
        ("barbara@example.com", "market_research", True),
        ("edsger@example.com", "market_research", True),
        ("edsger@example.com", "newsletter", True),
        ("edsger@example.com", "promotions", True),
        ("grace@example.com", "newsletter", False),
        ("grace@example.com", "promotions", True),
    ]
