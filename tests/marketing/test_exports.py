import csv
import io

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from marketing import campaigns, dispatch, exports, sending
from marketing.models import Delivery, ExportLog, Suppression
from marketing.parts import MarketingPart
from privacy.models import AccessLog
from privacy.selectors import customer_export
from tests.factories import CustomerFactory, RegistrationFactory

from .helpers import customer_who_consents, customer_who_withdrew

pytestmark = pytest.mark.django_db


def rows(content: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(content)))


def test_the_call_list_holds_only_customers_consenting_to_market_research_and_is_logged(purposes, staff_user):
    customer_who_consents(
        "market_research", first_name="Ada", last_name="Lovelace", phone="+442079460958", city="London"
    )
    customer_who_withdrew("market_research", first_name="Bob")
    customer_who_consents("newsletter", first_name="Carol")
    CustomerFactory(first_name="Dan")  # never asked
    erased = customer_who_consents("market_research", first_name="Erin")
    erased.erased_at = timezone.now()
    erased.save()
    customer_who_consents("market_research", first_name='=HYPERLINK("http://evil")', last_name="Mallory")

    filename, content = exports.call_list_export(user=staff_user)

    listed = rows(content)
    assert [r["first_name"] for r in listed] == ["Ada", '\'=HYPERLINK("http://evil")']
    assert listed[0]["phone"] == "+442079460958"
    assert listed[0]["city"] == "London"
    assert "email" not in listed[0]
    assert filename.startswith("market-research-call-list-")
    log = AccessLog.objects.get()
    assert (log.action, log.staff_user) == ("list_exported", staff_user)
    assert log.detail == "Market-research call list: 2 customers"


def test_internal_analysis_holds_only_consenting_customers_under_a_stable_pseudonym(purposes, staff_user):
    ada = customer_who_consents("internal_analysis", email="ada@example.com", country="DE", currency="EUR")
    bob = customer_who_withdrew("internal_analysis", email="bob@example.com")
    carol = CustomerFactory(email="carol@example.com")
    for customer in (ada, ada, bob, carol):
        RegistrationFactory(customer=customer)

    _, first = exports.internal_analysis_export(user=staff_user)
    _, second = exports.internal_analysis_export(user=staff_user)

    listed = rows(first)
    assert len(listed) == 2
    assert {r["customer"] for r in listed} == {exports.pseudonym(ada.public_id)}
    assert listed[0]["customer"] not in (str(ada.public_id), str(ada.pk), ada.email)
    assert (listed[0]["country"], listed[0]["currency"], listed[0]["reseller"]) == ("DE", "EUR", "Paddle")
    assert rows(second)[0]["customer"] == listed[0]["customer"]  # stable across exports
    assert "ada@example.com" not in first
    assert [log.detail for log in ExportLog.objects.all()] == [
        "Internal-analysis purchase data (pseudonymised): 2 registrations"
    ] * 2


@pytest.mark.parametrize("export", [exports.call_list_export, exports.internal_analysis_export])
def test_an_export_is_recorded_once_in_the_access_log_which_the_export_logs_list(purposes, staff_user, export):
    customer_who_consents("market_research", first_name="Ada")
    AccessLog.objects.create(staff_user=staff_user, customer=CustomerFactory(), action=AccessLog.Action.VIEWED)

    with CaptureQueriesContext(connection) as queries:
        export(user=staff_user)

    inserts = [q["sql"] for q in queries if q["sql"].lstrip().upper().startswith("INSERT")]
    assert len(inserts) == 1
    assert AccessLog._meta.db_table in inserts[0]
    exported = AccessLog.objects.get(action=AccessLog.Action.LIST_EXPORTED)
    assert list(ExportLog.objects.all()) == [exported]  # the export logs list only the list exports


def test_the_data_export_lists_emails_sent_and_erasure_keeps_campaign_and_time_only(
    smtp, make_campaign, staff_user, eager_celery
):
    ada = customer_who_consents(email="ada@example.com")
    campaign = make_campaign(subject="Spring news")
    campaigns.campaign_send_now(campaign=campaign, user=staff_user)
    dispatch.campaigns_dispatch_due()
    sending.deliveries_send_batch(campaign_id=campaign.pk, first_id=0, last_id=dispatch.LAST_ID)

    section = customer_export(customer=ada)["marketing_emails"]
    assert [(s["campaign"], s["subject"]) for s in section] == [("Spring newsletter", "Spring news")]
    assert section[0]["sent_at"]

    MarketingPart().erase(ada)
    delivery = Delivery.objects.get(customer=ada)
    assert (delivery.campaign, delivery.message_id, delivery.last_error) == (campaign, "", "")
    assert delivery.sent_at is not None
    assert Suppression.objects.get().reason == Suppression.Reason.ERASURE
