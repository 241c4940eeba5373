"""
Privacy at send time: an erased customer is never mailed again (even when the address comes
back in an import with consent), and neither the worker's nor the web's logs of a send name
an address. The tasks run in-process; mail goes over real SMTP to an in-process server.
"""

import io
import logging
import re
from urllib.parse import urlparse

import pytest
from django.core import mail
from django.core.management import CommandError, call_command
from django.db import connection

from common.logging import MaskEmailFilter
from customers.models import Customer
from marketing import campaigns, dispatch, sending, tasks
from marketing.models import Delivery
from privacy.services import customer_erase

from .helpers import customer_who_consents

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("eager_celery")]

ADDRESS = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+")


def test_an_erased_customer_is_never_emailed_even_after_a_reimport_with_consent(
    smtp, make_campaign, staff_user, tmp_path
):
    ada = customer_who_consents(email="ada@example.com")
    customer_who_consents(email="grace@example.com")
    customer_erase(customer=ada, staff_user=staff_user)
    path = tmp_path / "old-list.csv"
    path.write_text("email,consent_newsletter\nada@example.com,yes\n", encoding="utf-8")
    err = io.StringIO()
    with pytest.raises(CommandError, match="nothing was imported"):
        call_command("import_customers", str(path), "--evidence", "Old list", "--no-progress", stderr=err)
    assert "row 2, email: a customer with this address asked for their data to be erased" in err.getvalue()
    assert not Customer.objects.by_email("ada@example.com").exists()

    campaign = make_campaign()
    campaigns.campaign_send_now(campaign=campaign, user=staff_user)
    dispatch.campaigns_dispatch_due()
    sending.deliveries_send_batch(campaign_id=campaign.pk, first_id=0, last_id=dispatch.LAST_ID)

    assert smtp.handler.recipients() == ["grace@example.com"]
    assert not Delivery.objects.filter(campaign=campaign, customer=ada).exists()


@pytest.fixture
def site_log():
    """
    What the configured console handler (the one web and worker processes write) prints,
    with every SQL statement and its parameters logged too, so addresses certainly pass by.
    """
    handler = next(h for h in logging.getLogger().handlers if any(isinstance(f, MaskEmailFilter) for f in h.filters))
    stream = io.StringIO()
    previous_stream = handler.setStream(stream)
    root, db_logger = logging.getLogger(), logging.getLogger("django.db.backends")
    levels = root.level, db_logger.level
    root.setLevel(logging.DEBUG)
    db_logger.setLevel(logging.DEBUG)
    connection.force_debug_cursor = True
    yield stream
    connection.force_debug_cursor = False
    root.setLevel(levels[0])
    db_logger.setLevel(levels[1])
    handler.setStream(previous_stream)


def test_the_worker_log_of_a_campaign_send_names_no_address(smtp, make_campaign, staff_user, site_log):
    customer_who_consents(email="ada.lovelace@example.com", first_name="Ada")
    customer_who_consents(email="grace@example.com")
    campaign = make_campaign()
    campaigns.campaign_send_now(campaign=campaign, user=staff_user)

    tasks.campaigns_dispatch_due()
    result = tasks.deliveries_send_batch(campaign.pk, 0, dispatch.LAST_ID)

    assert result["sent"] == 2
    log = site_log.getvalue()
    assert "dispatched" in log  # the worker did log, and SQL with addresses went by masked
    assert "a***@***" in log
    assert ADDRESS.findall(log) == [] and "ada.lovelace" not in log and "grace@" not in log


def test_the_web_log_of_the_preference_link_flow_names_no_address(
    client, purposes, site_log, settings, django_capture_on_commit_callbacks
):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    customer_who_consents(email="ada.lovelace@example.com")

    with django_capture_on_commit_callbacks(execute=True):
        with_link = client.post("/preferences/", {"email": "ada.lovelace@example.com"})
    link = re.search(r"https?://\S+/preferences/\S+/", mail.outbox[-1].body).group(0)
    page = client.get(urlparse(link).path)

    assert with_link.status_code == 200 and page.status_code == 200
    log = site_log.getvalue()
    assert "a***@***" in log
    assert "ada.lovelace" not in log and ADDRESS.search(log) is None
