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
    from customers import imports

    monkeypatch.setattr(imports, "IMPORT_BATCH_SIZE", 2)
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


# ---------------------------------------------------------------------------------------
# Consent is recorded only once every customer is written


def test_no_consent_is_recorded_until_every_customer_of_the_file_is_written(monkeypatch):
    from customers import imports
    from customers.imports import customers_import

    # given a file of four customers who all agreed to the newsletter, written two at a time
    monkeypatch.setattr(imports, "IMPORT_BATCH_SIZE", 2)
    headers = ["email", "first_name", "consent_newsletter"]
    rows = [
        {"email": f"{name}@example.com", "first_name": name.title(), "consent_newsletter": "yes"}
        for name in ("ada", "grace", "linus", "barbara")
    ]
    audience_while_writing = []
    passes = []

    def progress(items):
        passes.append(items)  # checking the file, writing customers, recording consent
        for index, item in enumerate(items):
            if len(passes) == 2 and index == 2:
                # Ada and Grace are written: a campaign dispatched now must not reach them yet.
                audience_while_writing.append(Customer.objects.count())
                audience_while_writing.append(customers_consenting_to("newsletter").count())
            yield item

    # when the file is imported
    report = customers_import(headers=headers, rows=rows, options={"evidence": EVIDENCE}, progress=progress)

    # then while the customers were being written none of them could be sent to; now all can
    assert audience_while_writing == [2, 0]
    assert report.counters == {"consents granted": 4}
    assert customers_consenting_to("newsletter").count() == 4


def test_a_customer_erased_after_being_written_gets_no_consent_and_the_import_says_so(django_user_model):
    from customers.imports import customers_import
    from privacy.services import customer_erase
    from tests.privacy.people import staff_in

    officer = staff_in(django_user_model, "Privacy officer", "olga-officer")
    grace = CustomerFactory(email="grace@example.com", first_name="Grace", last_name="Hopper")
    headers = ["email", "last_name", "consent_newsletter"]
    rows = [
        {"email": "grace@example.com", "last_name": "King", "consent_newsletter": "yes"},
        {"email": "ada@example.com", "last_name": "Lovelace", "consent_newsletter": "yes"},
    ]
    passes = []

    def progress(items):
        passes.append(items)
        if len(passes) == 3:  # the customers are written; a privacy officer erases Grace now
            customer_erase(customer=Customer.objects.get(pk=grace.pk), staff_user=officer)
        return iter(items)

    report = customers_import(
        headers=headers, rows=rows, update=True, options={"evidence": EVIDENCE}, progress=progress
    )

    assert report.counters == {
        "consents granted": 1,
        "rows with consent not recorded (customer erased meanwhile)": 1,
    }
    assert report.notes == [f"customer {grace.public_id}: erased during the import; no consent was recorded."]
    assert not ConsentEvent.objects.filter(customer=grace).exists()
    assert list(customers_consenting_to("newsletter").values_list("email", flat=True)) == ["ada@example.com"]


# ---------------------------------------------------------------------------------------
# SQLite: a customer's unsubscribe never waits for a long import


@pytest.fixture
def sqlite_file_database(tmp_path, settings):
    """
    A migrated SQLite file with the site's SQLite options (not the in-memory test database,
    where WAL and file locks do not apply). Each call of the returned function opens a new
    connection to it: give one to each thread.
    """
    from django.contrib.contenttypes.models import ContentType
    from django.db import connections
    from django.db.backends.sqlite3.base import DatabaseWrapper

    settings_dict = connections.configure_settings(
        {
            "default": {
                "ENGINE": "django.db.backends.sqlite3",
                "NAME": str(tmp_path / "consentdesk.sqlite3"),
                "OPTIONS": dict(settings.SQLITE_OPTIONS),
            }
        }
    )["default"]

    def connect() -> DatabaseWrapper:
        return DatabaseWrapper({**settings_dict, "OPTIONS": dict(settings_dict["OPTIONS"])}, "default")

    original = connections["default"]
    connections["default"] = connect()
    ContentType.objects.clear_cache()
    try:
        call_command("migrate", verbosity=0, interactive=False)
        yield connect
    finally:
        connections["default"].close()
        connections["default"] = original
        ContentType.objects.clear_cache()


def test_customers_can_unsubscribe_on_sqlite_while_a_long_import_is_writing(sqlite_file_database, monkeypatch):
    import threading

    from django.db import connection, connections

    from consents.models import Purpose, Source
    from consents.services import consent_grant, consent_withdraw
    from customers import imports
    from customers.imports import customers_import

    # given the embedded SQLite default, in WAL mode, and Ada and Grace, who agreed to the newsletter
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA journal_mode")
        assert cursor.fetchone()[0] == "wal"
    newsletter = Purpose.objects.get(code="newsletter")
    ada = Customer.objects.create(email="ada@example.com", first_name="Ada")
    grace = Customer.objects.create(email="grace@example.com", first_name="Grace")
    for customer in (ada, grace):
        consent_grant(customer=customer, purpose=newsletter, source=Source.SIGNUP_FORM)
    # and a file of 150 customers, written 50 at a time
    monkeypatch.setattr(imports, "IMPORT_BATCH_SIZE", 50)
    monkeypatch.setattr(imports, "IMPORT_CONSENT_BATCH_SIZE", 50)
    headers = ["email", "first_name", "consent_newsletter"]
    rows = [
        {"email": f"reader{n}@example.com", "first_name": "Reader", "consent_newsletter": "yes"} for n in range(150)
    ]
    outcome: list[str] = []

    def unsubscribe(customer):
        # Another process (the web worker): its own connection to the same file.
        connections["default"] = sqlite_file_database()
        try:
            consent_withdraw(customer=customer, purpose=newsletter, source=Source.ONE_CLICK)
            outcome.append(f"{customer.first_name} withdrawn")
        except Exception as error:  # "database is locked" was the failure
            outcome.append(f"{customer.first_name}: {error!r}")
        finally:
            connections["default"].close()

    clicks = {
        2: threading.Thread(target=unsubscribe, args=(ada,)),
        3: threading.Thread(target=unsubscribe, args=(grace,)),
    }
    outcome_while_importing = []
    passes = []

    def progress(items):
        passes.append(items)  # checking the file, writing customers, recording consent
        for index, item in enumerate(items):
            if len(passes) in clicks and index == 50:
                # 50 customers (or 50 rows of consent) are written; a customer clicks "unsubscribe".
                clicks[len(passes)].start()
                clicks[len(passes)].join(timeout=10)
                outcome_while_importing.append(list(outcome))
            yield item

    # when the import runs
    try:
        report = customers_import(headers=headers, rows=rows, options={"evidence": EVIDENCE}, progress=progress)
    finally:
        for click in clicks.values():
            if click.is_alive():
                click.join()

    # then each unsubscribe went through while the import was still writing, and the import finished
    assert outcome_while_importing == [["Ada withdrawn"], ["Ada withdrawn", "Grace withdrawn"]]
    assert report.created == 150
    assert report.counters == {"consents granted": 150}
    assert not customers_consenting_to("newsletter").filter(pk__in=[ada.pk, grace.pk]).exists()
    assert customers_consenting_to("newsletter").count() == 150


def test_a_database_failure_while_recording_consent_says_what_is_done_and_how_to_finish(tmp_path, monkeypatch):
    from django.db import OperationalError

    from consents import imports as consent_imports
    from customers import imports

    # given a file of three customers who agreed, recorded one at a time, and a database that fails at the second
    monkeypatch.setattr(imports, "IMPORT_BATCH_SIZE", 1)
    monkeypatch.setattr(imports, "IMPORT_CONSENT_BATCH_SIZE", 1)
    path = write(
        tmp_path,
        "ada@example.com,Ada,Lovelace,yes,,\ngrace@example.com,Grace,Hopper,yes,,\nlinus@example.com,Linus,Torvalds,yes,,\n",
    )
    real_apply = consent_imports.EXTENSION.apply
    calls = []

    def failing_once(*args):
        calls.append(1)
        if len(calls) == 2:
            raise OperationalError("disk I/O error")
        return real_apply(*args)

    monkeypatch.setattr(consent_imports.EXTENSION, "apply", failing_once)

    # when it is imported, the command says what was done and what to do
    with pytest.raises(CommandError) as raised:
        run_import(path, "--evidence", EVIDENCE)
    assert "every customer is imported, and consent is recorded for the rows before row 3" in str(raised.value)
    assert "import the same file again with --update" in str(raised.value)
    assert Customer.objects.count() == 3
    assert list(customers_consenting_to("newsletter").values_list("email", flat=True)) == ["ada@example.com"]

    # and importing the same file again with --update records the rest, nothing twice
    out, _ = run_import(path, "--update", "--evidence", EVIDENCE)
    assert "2 consents granted" in out
    assert ConsentEvent.objects.filter(purpose__code="newsletter", granted=True).count() == 3
