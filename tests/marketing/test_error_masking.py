"""
Mail servers quote the recipient in their replies; what a delivery or a suppression stores of a
reply names nobody, so staff who may not see customers (Marketing) read no address there, and
erasure has nothing left to find. A preview of a real customer's message carries no live link of
theirs and is recorded in the access log.
"""

import re

import pytest

from common.logging import mask_emails
from consents.tokens import BadToken, customer_from_preference_token
from marketing import campaigns, dispatch, sending
from marketing.models import Delivery, Suppression
from marketing.tokens import read_unsubscribe_token
from privacy.models import AccessLog

from .helpers import customer_who_consents

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "text, address",
    [
        ("550 5.1.1 <bounce.victim@example.net>: Recipient address rejected", "bounce.victim@example.net"),
        ('550 mailbox "ada lovelace"@example.com unavailable', '"ada lovelace"@example.com'),
        ("the mailbox name of 'ſam@example.com' is not ASCII", "ſam@example.com"),
        ("553 5.1.3 <grace%40example.com> bad syntax", "grace%40example.com"),
        ("550 unknown user <root@localhost>", "root@localhost"),
        ("550 <ada@a.b> rejected", "ada@a.b"),
    ],
)
def test_addresses_in_smtp_replies_are_masked_whatever_their_form(text, address):
    masked = mask_emails(text)
    assert address not in masked
    assert address.split("@")[0].split("%40")[0].strip('"') not in masked.replace("***", "")
    assert "***@***" in masked


def test_a_bounce_stores_the_reply_without_the_address_in_the_delivery_and_the_suppression(
    smtp, make_campaign, staff_user
):
    # given Victor's relay rejects him, naming his address in the reply
    victor = customer_who_consents(email="bounce.victim@example.net")
    smtp.handler.replies = {"bounce.victim@example.net": "550 5.1.1 <bounce.victim@example.net>: Recipient unknown"}
    campaign = make_campaign()
    campaigns.campaign_send_now(campaign=campaign, user=staff_user)
    dispatch.campaigns_dispatch_due()

    # when the batch sends
    sending.deliveries_send_batch(campaign_id=campaign.pk, first_id=0, last_id=dispatch.LAST_ID)

    # then the failure and the suppression say what happened, but not to whom
    delivery = Delivery.objects.get(customer=victor)
    suppression = Suppression.objects.get()
    assert delivery.status == Delivery.Status.FAILED
    assert "550 5.1.1" in delivery.last_error and "Recipient unknown" in delivery.last_error
    for stored in (delivery.last_error, suppression.note):
        assert "bounce.victim" not in stored and "example.net" not in stored


def test_a_transient_reply_is_stored_masked_too(smtp, make_campaign, staff_user):
    busy = customer_who_consents(email="busy.bee@example.com")
    smtp.handler.replies = {"busy.bee@example.com": "451 4.2.0 <busy.bee@example.com>: mailbox busy"}
    campaign = make_campaign()
    campaigns.campaign_send_now(campaign=campaign, user=staff_user)
    dispatch.campaigns_dispatch_due()
    sending.deliveries_send_batch(campaign_id=campaign.pk, first_id=0, last_id=dispatch.LAST_ID)
    retry = Delivery.objects.get(customer=busy)
    assert retry.status == Delivery.Status.QUEUED
    assert "451" in retry.last_error and "busy.bee" not in retry.last_error


def test_an_address_no_server_takes_fails_with_a_message_that_does_not_repeat_it(smtp, make_campaign, staff_user):
    sam = customer_who_consents(email="ſam@example.com")
    campaign = make_campaign()
    campaigns.campaign_send_now(campaign=campaign, user=staff_user)
    dispatch.campaigns_dispatch_due()
    sending.deliveries_send_batch(campaign_id=campaign.pk, first_id=0, last_id=dispatch.LAST_ID)
    delivery = Delivery.objects.get(customer=sam)
    assert delivery.status == Delivery.Status.FAILED
    assert "not ASCII" in delivery.last_error and "ſam" not in delivery.last_error


@pytest.fixture
def admin_client(client, staff_user):
    client.force_login(staff_user)
    return client


def links_in(text: str, kind: str) -> list[str]:
    return re.findall(rf"https://consent\.example\.com/{kind}/([^/\s\"<>&]+)/", text)


def test_a_preview_of_a_real_customer_has_dead_links_and_is_recorded_in_the_access_log(
    admin_client, make_campaign, staff_user
):
    # given Grace, who consents
    grace = customer_who_consents(email="grace@example.com", first_name="Grace")
    campaign = make_campaign()

    # when a member of staff previews the campaign for her
    page = admin_client.get(f"/admin/marketing/campaign/{campaign.pk}/preview/?customer=grace@example.com")

    # then the preview shows her message, and its links lead to nobody: not to her
    text = page.content.decode()
    assert "Spring news for Grace" in text
    unsubscribe, preferences = links_in(text, "unsubscribe"), links_in(text, "preferences")
    assert unsubscribe and preferences, "the preview shows the footer's links"
    for token in unsubscribe:
        with pytest.raises(BadToken, match="does not lead to a subscription"):
            read_unsubscribe_token(token)
    for token in preferences:
        with pytest.raises(BadToken):
            customer_from_preference_token(token)
    # and the look at her data is in the access log
    entry = AccessLog.objects.get(customer=grace)
    assert (entry.staff_user, entry.action) == (staff_user, AccessLog.Action.VIEWED)
    assert f"campaign #{campaign.pk}" in entry.detail


def test_a_preview_with_the_sample_customer_records_nothing(admin_client, make_campaign):
    campaign = make_campaign()
    assert admin_client.get(f"/admin/marketing/campaign/{campaign.pk}/preview/").status_code == 200
    assert not AccessLog.objects.exists()
