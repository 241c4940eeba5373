"""
A relay that offers PIPELINING gets MAIL, RCPT and DATA in one write: the same messages, and
the same handling of refusals, as one that does not.
"""

import pytest

from marketing import campaigns, dispatch, sending, smtp
from marketing.models import Delivery

from .helpers import PipeliningHandler, SMTPServer, customer_who_consents


@pytest.fixture
def pipelining_smtp(settings):
    server = SMTPServer(PipeliningHandler())
    server.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", server.port, 10
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    yield server
    server.stop()


def test_a_pipelining_relay_gets_each_message_whole_and_refusals_are_handled_as_before(
    pipelining_smtp, make_campaign, staff_user, monkeypatch
):
    pipelined = []
    original = smtp.Sender._send_pipelined
    monkeypatch.setattr(
        smtp.Sender, "_send_pipelined", lambda self, c, m: pipelined.append(m.recipient) or original(self, c, m)
    )
    customer_who_consents(email="ada@example.com", first_name="Ada")
    customer_who_consents(email="grace@example.com", first_name="Grace")
    busy = customer_who_consents(email="busy@example.com")
    gone = customer_who_consents(email="gone@example.com")
    pipelining_smtp.handler.replies = {
        "busy@example.com": "451 4.3.0 Try again later",
        "gone@example.com": "550 5.1.1 The email account that you tried to reach does not exist",
    }
    # A line starting with a dot must arrive with one dot (SMTP transparency).
    campaign = make_campaign(text_body="Hello {{ first_name }},\n.NET users: PhotoForge 5 runs on .NET 8.\n.")
    campaigns.campaign_send_now(campaign=campaign, user=staff_user)
    dispatch.campaigns_dispatch_due()

    sending.deliveries_send_batch(campaign_id=campaign.pk, first_id=0, last_id=dispatch.LAST_ID)

    assert len(pipelined) == 4
    assert pipelining_smtp.handler.recipients() == ["ada@example.com", "grace@example.com"]
    for message in pipelining_smtp.handler.received():
        text = message.get_body(("plain",)).get_content()
        assert "\n.NET users: PhotoForge 5 runs on .NET 8.\n.\n" in text.replace("\r\n", "\n")
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert Delivery.objects.get(customer=busy).status == Delivery.Status.QUEUED  # retried later
    assert Delivery.objects.get(customer=gone).status == Delivery.Status.FAILED
    assert Delivery.objects.filter(campaign=campaign, status="sent").count() == 2
