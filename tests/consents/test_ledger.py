import pytest
from django.core.exceptions import ValidationError
from django.db import DatabaseError, connection, transaction

from consents.models import Consent, ConsentEvent, LedgerImmutable, PolicyVersion, Purpose, Source
from consents.selectors import customers_consenting_to
from consents.services import RequestMeta, consent_events_redact, consent_grant, consent_withdraw

pytestmark = pytest.mark.django_db


def test_the_four_purposes_and_a_policy_version_exist_after_migrate():
    purposes = {p.code: (p.name, p.is_marketing) for p in Purpose.objects.all()}
    assert purposes == {
        "newsletter": ("Newsletter", True),
        "promotions": ("Promotions and offers", True),
        "market_research": ("Market research", True),
        "internal_analysis": ("Internal analysis", False),
    }
    assert PolicyVersion.objects.current().version == "1.0"


def test_a_new_customer_has_no_consent_until_an_event_says_so(linus):
    assert not Consent.objects.filter(customer=linus).exists()
    assert not ConsentEvent.objects.filter(customer=linus).exists()
    assert not customers_consenting_to("newsletter").exists()


def test_grant_then_withdraw_gives_two_events_and_a_withdrawn_state(grace, newsletter):
    meta = RequestMeta(ip_address="203.0.113.9", user_agent="Firefox")
    consent_grant(customer=grace, purpose=newsletter, source=Source.SIGNUP_FORM, request_meta=meta)
    consent_withdraw(customer=grace, purpose=newsletter, source=Source.ONE_CLICK)

    events = list(ConsentEvent.objects.filter(customer=grace).order_by("id"))
    assert [(e.granted, e.source) for e in events] == [(True, "signup_form"), (False, "one_click")]
    assert events[0].ip_address == "203.0.113.9"
    assert events[0].wording == newsletter.wording
    assert events[0].policy_version == PolicyVersion.objects.current()
    state = Consent.objects.get(customer=grace, purpose=newsletter)
    assert state.granted is False
    assert state.event == events[1]


def test_setting_the_state_it_already_has_writes_nothing(ada, newsletter):
    first = consent_grant(customer=ada, purpose=newsletter, source=Source.PREFERENCE_PAGE)
    again = consent_grant(customer=ada, purpose=newsletter, source=Source.PREFERENCE_PAGE)

    assert first is not None
    assert again is None
    assert ConsentEvent.objects.filter(customer=ada).count() == 1
    assert Consent.objects.get(customer=ada, purpose=newsletter).event == first


def test_a_never_asked_customer_who_says_no_gets_a_withdrawn_event(linus, newsletter):
    event = consent_withdraw(customer=linus, purpose=newsletter, source=Source.IMPORT, note="2019 CRM export")
    assert event is not None
    assert Consent.objects.get(customer=linus, purpose=newsletter).granted is False


def test_staff_must_name_themselves_and_give_a_note(ada, newsletter, admin_user):
    with pytest.raises(ValidationError):
        consent_grant(customer=ada, purpose=newsletter, source=Source.STAFF, staff_user=admin_user, note="  ")
    with pytest.raises(ValidationError):
        consent_grant(customer=ada, purpose=newsletter, source=Source.STAFF, note="customer phoned")
    assert not ConsentEvent.objects.exists()


def test_the_model_refuses_to_change_or_delete_an_event(ada, newsletter):
    event = consent_grant(customer=ada, purpose=newsletter, source=Source.SIGNUP_FORM)
    event.note = "edited"
    with pytest.raises(LedgerImmutable):
        event.save()
    with pytest.raises(LedgerImmutable):
        event.delete()
    with pytest.raises(LedgerImmutable):
        ConsentEvent.objects.filter(pk=event.pk).update(granted=False)
    with pytest.raises(LedgerImmutable):
        ConsentEvent.objects.all().delete()
    event.refresh_from_db()
    assert event.granted is True
    assert event.note == ""


def test_redaction_clears_personal_details_but_keeps_the_decision(grace, newsletter, admin_user):
    meta = RequestMeta(ip_address="198.51.100.7", user_agent="Safari")
    consent_grant(customer=grace, purpose=newsletter, source=Source.PREFERENCE_PAGE, request_meta=meta)
    consent_withdraw(
        customer=grace, purpose=newsletter, source=Source.STAFF, staff_user=admin_user, note="phoned, ref 4471"
    )

    redacted = consent_events_redact(customer=grace)

    assert redacted == 2
    events = list(ConsentEvent.objects.filter(customer=grace).order_by("id"))
    assert [(e.granted, e.source, e.purpose_id) for e in events] == [
        (True, "preference_page", newsletter.pk),
        (False, "staff", newsletter.pk),
    ]
    assert all(e.ip_address is None and e.user_agent == "" and e.note == "" for e in events)
    assert all(e.redacted_at is not None for e in events)
    assert events[0].wording == newsletter.wording
    # Nothing left to clear: a second pass touches nothing.
    assert consent_events_redact(customer=grace) == 0


def test_retention_can_redact_only_ip_and_user_agent(grace, newsletter):
    meta = RequestMeta(ip_address="198.51.100.7", user_agent="Safari")
    consent_withdraw(customer=grace, purpose=newsletter, source=Source.IMPORT, request_meta=meta, note="CRM 2019")

    consent_events_redact(queryset=ConsentEvent.objects.filter(customer=grace), fields=["ip_address", "user_agent"])

    event = ConsentEvent.objects.get(customer=grace)
    assert (event.ip_address, event.user_agent, event.note) == (None, "", "CRM 2019")


def test_redaction_refuses_fields_that_prove_the_decision(grace):
    with pytest.raises(ValueError):
        consent_events_redact(customer=grace, fields=["granted"])
    with pytest.raises(ValueError):
        consent_events_redact()


@pytest.mark.postgres
def test_postgres_refuses_a_raw_update_of_the_ledger(grace, newsletter):
    event = consent_grant(customer=grace, purpose=newsletter, source=Source.SIGNUP_FORM)
    guard = pytest.raises(DatabaseError, match="never changed or deleted")
    with guard, transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("UPDATE consents_consentevent SET granted = false WHERE id = %s", [event.pk])
    event.refresh_from_db()
    assert event.granted is True


@pytest.mark.postgres
def test_postgres_refuses_a_raw_delete_of_the_ledger(grace, newsletter):
    event = consent_grant(customer=grace, purpose=newsletter, source=Source.SIGNUP_FORM)
    # The runtime role may not DELETE at all; a role that may is stopped by the trigger.
    guard = pytest.raises(DatabaseError, match=r"never changed or deleted|permission denied")
    with guard, transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM consents_consentevent WHERE id = %s", [event.pk])
    assert ConsentEvent.objects.filter(pk=event.pk).exists()


@pytest.mark.postgres
def test_postgres_redaction_mode_still_refuses_changing_the_decision_or_deleting(grace, newsletter):
    event = consent_grant(customer=grace, purpose=newsletter, source=Source.SIGNUP_FORM)
    for statement in (
        "UPDATE consents_consentevent SET granted = false WHERE id = %s",
        "DELETE FROM consents_consentevent WHERE id = %s",
    ):
        with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT set_config('consentdesk.ledger_redaction', 'on', true)")
            cursor.execute(statement, [event.pk])
    event.refresh_from_db()
    assert event.granted is True


@pytest.mark.postgres
def test_postgres_redaction_switch_is_off_again_after_the_sanctioned_path(grace, newsletter):
    event = consent_grant(
        customer=grace, purpose=newsletter, source=Source.SIGNUP_FORM, request_meta=RequestMeta("192.0.2.1", "UA")
    )
    with transaction.atomic():
        consent_events_redact(customer=grace)
        # Later statements in the same (erasure) transaction are guarded again.
        with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("UPDATE consents_consentevent SET note = 'x' WHERE id = %s", [event.pk])
    event.refresh_from_db()
    assert event.ip_address is None
    assert event.note == ""
