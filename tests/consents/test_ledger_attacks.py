"""
An attacker who has the site's own database connection (the runtime role of DATABASE_URL: a
stolen configuration, an SQL injection) tries to rewrite the consent ledger or what sending reads.
Every attempt is refused by PostgreSQL itself: the runtime role owns nothing and may not delete
from the ledger, and the ledger's triggers and Consent's composite foreign key hold for any role.
"""

import pytest
from django.db import DatabaseError, connection, transaction

from consents.models import Consent, ConsentEvent
from consents.services import RequestMeta, consent_events_redact, consent_grant, consent_withdraw
from consents.triggers import LEDGER_APPEND_ONLY
from tests.consents.people import ensure_purposes
from tests.factories import CustomerFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

GUARD_PGID = LEDGER_APPEND_ONLY.get_pgid(ConsentEvent)  # type: ignore[arg-type]  # pgtrigger takes the class; its hint says an instance


def _sql(statement: str, params=()) -> None:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)


def _refused(statement: str, params=(), *, match: str, redaction: bool = False) -> None:
    with pytest.raises(DatabaseError, match=match), transaction.atomic():
        if redaction:
            _sql("SELECT set_config('consentdesk.ledger_redaction', 'on', true)")
        _sql(statement, params)


@pytest.fixture(autouse=True)
def _as_the_runtime_role(db):
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_user, tableowner FROM pg_tables WHERE tablename = 'consents_consentevent'")
        role, owner = cursor.fetchone()
    if role == owner:
        pytest.skip("needs the runtime role: set MIGRATION_DATABASE_URL to the owner and DATABASE_URL to another role")


@pytest.fixture
def graces_proof(grace, newsletter):
    """Grace signed up for the newsletter from her laptop, with a note from the sales call."""
    return consent_grant(
        customer=grace,
        purpose=newsletter,
        source="signup_form",
        request_meta=RequestMeta(ip_address="203.0.113.7", user_agent="Firefox/140"),
        note="Asked at the trade fair",
    )


def test_the_runtime_role_cannot_truncate_the_ledger(graces_proof):
    _refused("TRUNCATE consents_consentevent", match="permission denied")
    _refused("TRUNCATE consents_consentevent CASCADE", match="permission denied")
    assert ConsentEvent.objects.filter(pk=graces_proof.pk).exists()


def test_the_runtime_role_cannot_disable_or_drop_the_ledgers_triggers(graces_proof):
    for statement in (
        "ALTER TABLE consents_consentevent DISABLE TRIGGER ALL",
        "ALTER TABLE consents_consentevent DISABLE TRIGGER USER",
        f"ALTER TABLE consents_consentevent DISABLE TRIGGER {GUARD_PGID}",
        f"DROP TRIGGER {GUARD_PGID} ON consents_consentevent",
        f"DROP FUNCTION {GUARD_PGID}() CASCADE",
        f"CREATE OR REPLACE FUNCTION {GUARD_PGID}() RETURNS trigger AS $$ BEGIN RETURN NEW; END $$ LANGUAGE plpgsql",
        "ALTER TABLE consents_consentevent OWNER TO CURRENT_USER",
        "DROP TABLE consents_consentevent CASCADE",
        "ALTER TABLE consents_consent DROP CONSTRAINT consent_names_its_decision",
    ):
        _refused(statement, match=r"must be owner|permission denied")
    _refused(
        "CREATE TRIGGER sneak BEFORE UPDATE ON consents_consentevent "
        "FOR EACH ROW EXECUTE FUNCTION suppress_redundant_updates_trigger()",
        match="permission denied",
    )
    # Still guarded:
    _refused("UPDATE consents_consentevent SET granted = false WHERE id = %s", [graces_proof.pk], match="never changed")


def test_the_runtime_role_cannot_delete_an_event(graces_proof):
    _refused("DELETE FROM consents_consentevent WHERE id = %s", [graces_proof.pk], match="permission denied")
    _refused("DELETE FROM consents_consentevent", match="permission denied", redaction=True)
    assert ConsentEvent.objects.filter(pk=graces_proof.pk).exists()


def test_the_runtime_role_cannot_change_a_decision_even_in_redaction_mode(graces_proof):
    for redaction in (False, True):
        for statement in (
            "UPDATE consents_consentevent SET granted = false WHERE id = %s",
            "UPDATE consents_consentevent SET occurred_at = occurred_at - interval '1 year' WHERE id = %s",
            "UPDATE consents_consentevent SET wording = 'anything' WHERE id = %s",
            # The language the customer was shown is part of the proof, like the words.
            "UPDATE consents_consentevent SET language = 'de' WHERE id = %s",
            "UPDATE consents_consentevent SET customer_id = customer_id + 1 WHERE id = %s",
        ):
            _refused(statement, [graces_proof.pk], match="never changed or deleted", redaction=redaction)
    graces_proof.refresh_from_db()
    assert graces_proof.granted is True


@pytest.mark.parametrize(
    "assignment",
    [
        "ip_address = '198.51.100.99'",
        "user_agent = 'Forged/1.0'",
        "note = 'She agreed to everything'",
        "ip_address = NULL, user_agent = '', note = 'replaced'",
        "ip_address = NULL, user_agent = ' ', note = ''",
        # Clearing is only allowed as a redaction, which says when it happened.
        "ip_address = NULL, user_agent = '', note = '', redacted_at = NULL",
    ],
)
def test_redaction_mode_accepts_only_clearing(graces_proof, assignment):
    _refused(
        f"UPDATE consents_consentevent SET {assignment} WHERE id = %s",
        [graces_proof.pk],
        match="never changed or deleted",
        redaction=True,
    )
    graces_proof.refresh_from_db()
    assert (graces_proof.ip_address, graces_proof.user_agent, graces_proof.note) == (
        "203.0.113.7",
        "Firefox/140",
        "Asked at the trade fair",
    )


def test_the_pgtrigger_ignore_setting_does_not_lift_the_guard(graces_proof):
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_trigger WHERE tgname = %s", [GUARD_PGID])
        assert cursor.fetchone() == (1,)
    with pytest.raises(DatabaseError, match="never changed"), transaction.atomic():
        _sql("SELECT set_config('pgtrigger.ignore', %s, true)", ["{" + GUARD_PGID + "}"])
        _sql("UPDATE consents_consentevent SET granted = false WHERE id = %s", [graces_proof.pk])


def test_the_sanctioned_redaction_still_clears_the_personal_details(graces_proof, grace):
    assert consent_events_redact(customer=grace) == 1
    graces_proof.refresh_from_db()
    assert (graces_proof.ip_address, graces_proof.user_agent, graces_proof.note) == (None, "", "")
    assert graces_proof.redacted_at is not None and graces_proof.granted is True


@pytest.fixture
def withdrawn_and_others(grace, ada, newsletter, market_research):
    """Grace withdrew from the newsletter; Ada consents to it; Grace consents to market research."""
    consent_grant(customer=grace, purpose=newsletter, source="signup_form")
    withdrawal = consent_withdraw(customer=grace, purpose=newsletter, source="one_click")
    adas_grant = consent_grant(customer=ada, purpose=newsletter, source="signup_form")
    graces_research = consent_grant(customer=grace, purpose=market_research, source="signup_form")
    state = Consent.objects.get(customer=grace, purpose=newsletter)
    assert state.granted is False and state.event_id == withdrawal.pk
    return state, adas_grant, graces_research


def test_consent_cannot_be_switched_to_granted_without_an_event(withdrawn_and_others):
    state, _, _ = withdrawn_and_others
    _refused("UPDATE consents_consent SET granted = true WHERE id = %s", [state.pk], match="consent_names_its_decision")
    state.refresh_from_db()
    assert state.granted is False


def test_consent_cannot_name_another_customers_event(withdrawn_and_others):
    state, adas_grant, _ = withdrawn_and_others
    _refused(
        "UPDATE consents_consent SET granted = true, event_id = %s WHERE id = %s",
        [adas_grant.pk, state.pk],
        match="consent_names_its_decision",
    )


def test_consent_cannot_name_an_event_of_another_purpose(withdrawn_and_others):
    state, _, graces_research = withdrawn_and_others
    _refused(
        "UPDATE consents_consent SET granted = true, event_id = %s WHERE id = %s",
        [graces_research.pk, state.pk],
        match="consent_names_its_decision",
    )


def test_consent_cannot_name_an_event_of_the_other_decision(withdrawn_and_others, grace, newsletter):
    state, _, _ = withdrawn_and_others
    graces_first_grant = ConsentEvent.objects.get(customer=grace, purpose=newsletter, granted=True)
    # Her old grant, with the state left withdrawn: the two disagree.
    _refused(
        "UPDATE consents_consent SET event_id = %s WHERE id = %s",
        [graces_first_grant.pk, state.pk],
        match="consent_names_its_decision",
    )
    # A brand-new state row naming another customer's event is refused as well.
    linus = CustomerFactory(email="linus@example.com")
    _refused(
        "INSERT INTO consents_consent (customer_id, purpose_id, granted, since, event_id) "
        "VALUES (%s, %s, true, now(), %s)",
        [linus.pk, newsletter.pk, graces_first_grant.pk],
        match="consent_names_its_decision",
    )
    state.refresh_from_db()
    assert state.granted is False


@pytest.mark.django_db(transaction=True)
def test_the_guard_holds_for_the_owner_too_and_protects_columns_added_later(database_owner):
    """The owner could lift the triggers deliberately, but nothing it does by accident passes them."""
    purposes = ensure_purposes()
    grace = CustomerFactory(email="grace@example.com")
    event = consent_grant(customer=grace, purpose=purposes["newsletter"], source="signup_form")
    with database_owner(), transaction.atomic():
        _refused("TRUNCATE consents_consentevent CASCADE", match="never changed or deleted")
        _refused("DELETE FROM consents_consentevent WHERE id = %s", [event.pk], match="never changed or deleted")
        # A column a later migration adds is guarded without anyone listing it.
        _sql("ALTER TABLE consents_consentevent ADD COLUMN channel text NOT NULL DEFAULT 'web'")
        _refused(
            "UPDATE consents_consentevent SET channel = 'forged', ip_address = NULL WHERE id = %s",
            [event.pk],
            match="never changed or deleted",
            redaction=True,
        )
        transaction.set_rollback(True)
    assert ConsentEvent.objects.filter(pk=event.pk).exists()
