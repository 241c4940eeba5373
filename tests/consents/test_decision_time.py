"""
The current state is the latest decision by the time it was made, not by the time we heard
of it. Wendy Carr signed up in January 2025 and withdrew from the newsletter on 20 November
2026; what staff record afterwards about earlier days is history.
"""

import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from consents.models import Consent, ConsentEvent, PolicyVersion, Source
from consents.parts import ConsentPart
from consents.receipts import iso27560_record, kantara_receipt
from consents.selectors import customers_consenting_to
from consents.services import consent_record, consent_set
from consents.tokens import SensitiveAction, make_preference_token, make_sensitive_token
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db

SIGNED_UP = datetime(2025, 1, 10, 9, 30, tzinfo=UTC)
WITHDREW = datetime(2026, 11, 20, 16, 45, tzinfo=UTC)


@pytest.fixture
def support(django_user_model):
    return django_user_model.objects.create_user("sam", password="pw", is_staff=True)


@pytest.fixture
def wendy(newsletter):
    """Signed up in January 2025, agreed to the newsletter then, said no on 20 November 2026."""
    wendy = CustomerFactory(email="wendy@example.com", first_name="Wendy", last_name="Carr", created_at=SIGNED_UP)
    consent_set(customer=wendy, purpose=newsletter, granted=True, source=Source.SIGNUP_FORM, occurred_at=SIGNED_UP)
    consent_set(customer=wendy, purpose=newsletter, granted=False, source=Source.PREFERENCE_PAGE, occurred_at=WITHDREW)
    return wendy


def by_phone(customer, purpose, staff, *, granted=True, on: datetime):
    return consent_record(
        customer=customer,
        purpose=purpose,
        granted=granted,
        source=Source.STAFF,
        staff_user=staff,
        method="phone",
        note="customer phoned, call ref 5120",
        occurred_at=on,
    )


def newsletter_state(customer, newsletter) -> Consent:
    return Consent.objects.select_related("event").get(customer=customer, purpose=newsletter)


def test_a_grant_by_phone_dated_1990_is_refused_for_a_customer_who_withdrew(wendy, newsletter, support):
    with pytest.raises(ValidationError) as refused:
        by_phone(wendy, newsletter, support, on=datetime(1990, 1, 1, 12, 0, tzinfo=UTC))

    assert "before this customer's record was created" in " ".join(refused.value.messages)
    state = newsletter_state(wendy, newsletter)
    assert (state.granted, state.since) == (False, WITHDREW)
    assert ConsentEvent.objects.filter(customer=wendy).count() == 2
    assert not customers_consenting_to("newsletter").filter(pk=wendy.pk).exists()


def test_a_decision_before_the_first_policy_took_effect_is_refused(newsletter, support):
    # Olga's record was carried over from the shop we ran before any policy of ours took effect.
    olga = CustomerFactory(email="olga@example.com", created_at=datetime(2022, 5, 1, tzinfo=UTC))
    with pytest.raises(ValidationError, match="before our first privacy policy"):
        by_phone(olga, newsletter, support, on=datetime(2023, 6, 1, 12, 0, tzinfo=UTC))
    assert not ConsentEvent.objects.filter(customer=olga).exists()


def test_a_decision_dated_in_the_future_is_refused_beyond_a_small_clock_skew(newsletter, linus):
    with pytest.raises(ValidationError, match="in the future"):
        consent_set(
            customer=linus,
            purpose=newsletter,
            granted=True,
            source=Source.SIGNUP_FORM,
            occurred_at=timezone.now() + timedelta(hours=1),
        )
    assert not ConsentEvent.objects.filter(customer=linus).exists()

    # A browser clock a minute ahead of ours is not a decision in the future.
    event = consent_set(
        customer=linus,
        purpose=newsletter,
        granted=True,
        source=Source.SIGNUP_FORM,
        occurred_at=timezone.now() + timedelta(minutes=1),
    )
    assert newsletter_state(linus, newsletter).event == event


def test_a_back_dated_grant_is_kept_as_history_and_changes_nothing(client, wendy, newsletter, support):
    # when staff record a grant Wendy gave by phone in March 2025, before she withdrew
    march = datetime(2025, 3, 3, 12, 0, tzinfo=UTC)
    outcome = by_phone(wendy, newsletter, support, on=march)

    # then it is in the ledger, as history
    assert outcome.is_history
    assert outcome.event.occurred_at == march
    assert ConsentEvent.objects.filter(customer=wendy).count() == 3
    # and her current state is still the withdrawal of 20 November 2026
    state = newsletter_state(wendy, newsletter)
    assert (state.granted, state.since, state.event.source) == (False, WITHDREW, Source.PREFERENCE_PAGE)
    assert outcome.current == state
    # so no campaign reaches her, and her page says what she last decided
    assert not customers_consenting_to("newsletter").filter(pk=wendy.pk).exists()
    page = client.get(f"/preferences/{make_preference_token(wendy)}/").content.decode()
    assert "you said no on 20 November 2026" in page
    assert "you agreed on 3 March 2025" not in page


def test_a_decision_heard_of_late_but_made_last_becomes_the_current_state(wendy, newsletter, support):
    # Wendy rang on 1 December 2026 to say yes again; the call is written up the day after.
    rang = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    outcome = by_phone(wendy, newsletter, support, on=rang)

    assert not outcome.is_history
    state = newsletter_state(wendy, newsletter)
    assert (state.granted, state.since, state.event) == (True, rang, outcome.event)


def test_the_same_answer_made_later_records_nothing_and_made_earlier_is_history(wendy, newsletter, support):
    later = by_phone(wendy, newsletter, support, granted=False, on=datetime(2026, 11, 25, 12, 0, tzinfo=UTC))
    earlier = by_phone(wendy, newsletter, support, granted=False, on=datetime(2025, 6, 1, 12, 0, tzinfo=UTC))

    assert later.event is None
    assert earlier.is_history and earlier.event is not None
    assert newsletter_state(wendy, newsletter).since == WITHDREW


def test_the_policy_version_recorded_is_the_one_in_force_when_the_decision_was_made(wendy, newsletter, support):
    PolicyVersion.objects.create(
        version="2.0", effective_at=datetime(2026, 6, 1, tzinfo=UTC), text="We still never sell your data."
    )
    outcome = by_phone(wendy, newsletter, support, on=datetime(2025, 3, 3, 12, 0, tzinfo=UTC))
    recent = by_phone(wendy, newsletter, support, on=datetime(2026, 12, 1, 10, 0, tzinfo=UTC))

    assert outcome.event.policy_version.version == "1.0"
    assert recent.event.policy_version.version == "2.0"


def test_the_history_lists_decisions_in_the_order_they_were_made(client, admin_user, wendy, newsletter, support):
    by_phone(wendy, newsletter, support, on=datetime(2025, 3, 3, 12, 0, tzinfo=UTC))
    made = ["2025-01-10", "2025-03-03", "2026-11-20"]

    (newsletter_record,) = iso27560_record(customer=wendy)["dpv:hasProcess"]
    assert [d["dpv:isIndicatedAtTime"][:10] for d in newsletter_record["dpv:hasConsentStatus"]] == made
    assert newsletter_record["dpv:hasStatus"] == "dpv:ConsentWithdrawn"
    # the Kantara receipt: no consent in force, dated by the decision that ended it
    kantara = kantara_receipt(customer=wendy)
    assert kantara["services"][0]["purposes"] == []
    assert kantara["consentTimestamp"] == int(WITHDREW.timestamp())

    assert [d["occurred_at"][:10] for d in ConsentPart().export(wendy)["consent_history"]] == made
    # the customer's own download, through a fresh link
    export = json.loads(
        client.post(f"/preferences/secure/{make_sensitive_token(wendy, SensitiveAction.EXPORT)}/").content
    )
    assert [d["occurred_at"][:10] for d in export["consent_history"]] == made

    # the customer page's ledger: latest made first
    client.force_login(admin_user)
    page = client.get(f"/admin/customers/customer/{wendy.pk}/change/").content.decode()
    ledger_days = re.findall(r'class="field-decided">\s*<p>([^<]*)', page)
    assert len(ledger_days) == 3
    assert [day.split(",")[0] for day in ledger_days] == ["20 Nov 2026", "3 Mar 2025", "10 Jan 2025"]


# The staff form


def record_by_phone(client, customer, newsletter, *, given_on: str, decision="granted"):
    return client.post(
        f"/admin/customers/customer/{customer.pk}/record-consent/",
        {
            "purpose": newsletter.pk,
            "decision": decision,
            "method": "phone",
            "language": "en",
            "given_on": given_on,
            "note": "customer phoned, call ref 5120",
        },
        follow=True,
    )


def test_staff_are_told_a_back_dated_grant_was_recorded_as_history(client, admin_user, wendy, newsletter):
    client.force_login(admin_user)
    page = record_by_phone(client, wendy, newsletter, given_on="2025-03-03").content.decode()

    assert "Recorded as history: Newsletter granted on 3 March 2025" in page
    assert "the current state stays “withdrawn since 20 November 2026”" in page
    assert newsletter_state(wendy, newsletter).since == WITHDREW


def test_the_staff_form_refuses_a_grant_dated_1990_and_says_why(client, admin_user, wendy, newsletter):
    client.force_login(admin_user)
    response = record_by_phone(client, wendy, newsletter, given_on="1990-01-01")

    assert response.status_code == 200
    assert response.redirect_chain == []
    errors = response.context["form"].errors
    assert "before this customer's record was created" in " ".join(errors["given_on"])
    assert "nothing was recorded" in response.content.decode()
    assert ConsentEvent.objects.filter(customer=wendy).count() == 2


def test_a_decision_given_on_the_day_the_record_was_created_is_accepted(client, admin_user, newsletter):
    # Nadia's record was created yesterday afternoon, after she had agreed on the phone that day.
    yesterday_afternoon = timezone.now().replace(hour=15, minute=0) - timedelta(days=1)
    nadia = CustomerFactory(email="nadia@example.com", created_at=yesterday_afternoon)
    client.force_login(admin_user)
    given_on = timezone.localtime(yesterday_afternoon).date().isoformat()
    page = record_by_phone(client, nadia, newsletter, given_on=given_on).content.decode()

    assert "Recorded: Newsletter granted" in page
    assert newsletter_state(nadia, newsletter).since == yesterday_afternoon


def test_an_unsubscribe_after_a_grant_stamped_a_little_ahead_of_our_clock_still_withdraws(newsletter, linus):
    # Linus's browser clock runs three minutes fast when he signs up; a minute later he unsubscribes.
    consent_set(
        customer=linus,
        purpose=newsletter,
        granted=True,
        source=Source.SIGNUP_FORM,
        occurred_at=timezone.now() + timedelta(minutes=3),
    )
    withdrawal = consent_set(customer=linus, purpose=newsletter, granted=False, source=Source.ONE_CLICK)

    assert newsletter_state(linus, newsletter).event == withdrawal
    assert not customers_consenting_to("newsletter").filter(pk=linus.pk).exists()


def test_a_decision_made_now_is_recorded_even_before_any_policy_is_in_force(linus, newsletter):
    # The only policy version takes effect next week: Linus can still say no today.
    PolicyVersion.objects.all().delete()
    PolicyVersion.objects.create(version="1.0", effective_at=timezone.now() + timedelta(days=7), text="Soon.")
    consent_set(customer=linus, purpose=newsletter, granted=False, source=Source.UNSUBSCRIBE_LINK)
    assert newsletter_state(linus, newsletter).granted is False
