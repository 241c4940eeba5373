"""Saved audience segments: their audience sizes, the live count, and a campaign that sends only to its segment."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from django.utils import timezone

from consents.models import Consent
from marketing import campaigns, selectors, tasks
from marketing.models import AudienceSegment, Delivery
from tests.factories import CustomerFactory, ProductFactory, RegistrationFactory

from .helpers import customer_who_consents

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("eager_celery", "purposes")]


@pytest.fixture
def people():
    """
    Heidi (DE, de, owns PhotoForge bought last month), Fritz (AT, de, owns DiskSense), Amelie
    (FR, fr, owns PhotoForge bought two years ago), Ada (GB, en, owns PhotoForge): all consent
    to the newsletter; Karl (DE, de) owns PhotoForge but never consented.
    """
    photo = ProductFactory(name="PhotoForge Pro", code="photoforge-pro")
    disk = ProductFactory(name="DiskSense", code="disksense")
    now = timezone.now()
    heidi = customer_who_consents(email="heidi@example.com", country="DE", language="de")
    RegistrationFactory(customer=heidi, product=photo, purchased_at=now - timedelta(days=30))
    fritz = customer_who_consents(email="fritz@example.com", country="AT", language="de")
    RegistrationFactory(customer=fritz, product=disk, purchased_at=now - timedelta(days=30))
    amelie = customer_who_consents(email="amelie@example.com", country="FR", language="fr")
    RegistrationFactory(customer=amelie, product=photo, purchased_at=now - timedelta(days=730))
    ada = customer_who_consents(email="ada@example.com", country="GB", language="en")
    RegistrationFactory(customer=ada, product=photo, purchased_at=now - timedelta(days=5))
    karl = CustomerFactory(email="karl@example.com", country="DE", language="de")
    RegistrationFactory(customer=karl, product=photo, purchased_at=now - timedelta(days=5))
    return {"photo": photo, "disk": disk, "heidi": heidi, "fritz": fritz, "amelie": amelie, "ada": ada}


def segment(people, **criteria) -> AudienceSegment:
    products = criteria.pop("products", [])
    made = AudienceSegment.objects.create(name=f"Segment {AudienceSegment.objects.count()}", **criteria)
    made.products.set(products)
    return made


def size(made: AudienceSegment) -> int:
    return selectors.segment_audience_sizes(made)["Newsletter"]


def test_audience_sizes_follow_each_criterion(people):
    today = timezone.localdate()
    assert size(segment(people)) == 4  # no criteria: every consenting customer (never Karl)
    assert size(segment(people, countries=["DE", "AT"])) == 2
    assert size(segment(people, languages=["de", "fr"])) == 3
    assert size(segment(people, countries=["DE", "AT", "FR"], languages=["fr"])) == 1
    assert size(segment(people, products=[people["photo"]])) == 3
    assert size(segment(people, products=[people["photo"]], registered_from=today - timedelta(days=60))) == 2
    assert size(segment(people, registered_until=today - timedelta(days=365))) == 1  # Amelie
    assert selectors.segment_audience_sizes(segment(people))["Promotions and offers"] == 0


def test_consenting_since_keeps_only_longer_standing_consent(people):
    long_ago = timezone.now() - timedelta(days=100)
    Consent.objects.filter(customer=people["heidi"]).update(since=long_ago)
    assert size(segment(people, consenting_since=timezone.localdate() - timedelta(days=50))) == 1


def test_the_live_count_answers_the_form_as_it_stands(admin_client, people):
    response = admin_client.get(
        "/admin/marketing/audiencesegment/count/",
        {"countries": ["DE", "AT"], "languages": ["de"], "products": [people["photo"].pk]},
    )
    assert response.status_code == 200
    counts = {row["purpose"]: row["customers"] for row in response.json()["audience"]}
    assert counts["Newsletter"] == 1  # Heidi: Fritz owns DiskSense only


def test_the_live_count_refuses_bad_criteria_with_a_message(admin_client, people):
    response = admin_client.get(
        "/admin/marketing/audiencesegment/count/", {"languages": ["xx"], "registered_from": "yesterday"}
    )
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert "languages" in errors and "registered_from" in errors


def test_the_segment_page_shows_its_audience_and_loads_no_inline_script(admin_client, people):
    made = segment(people, countries=["DE"])
    page = admin_client.get(f"/admin/marketing/audiencesegment/{made.pk}/change/").content.decode()
    assert "Newsletter: 1" in page
    assert "/static/marketing/segment_count.js" in page


def test_a_segment_campaign_sends_only_to_its_segment(
    smtp, make_campaign, staff_user, people, django_capture_on_commit_callbacks
):
    german_speakers = segment(people, languages=["de"], products=[people["photo"], people["disk"]])
    campaign = make_campaign(segment=german_speakers)
    assert selectors.audience_size(campaign) == 2

    with django_capture_on_commit_callbacks(execute=True):
        tasks.work_enqueue(campaigns.campaign_send_now(campaign=campaign, user=staff_user))

    assert smtp.handler.recipients() == ["fritz@example.com", "heidi@example.com"]
    assert set(Delivery.objects.filter(campaign=campaign).values_list("customer__email", flat=True)) == {
        "fritz@example.com",
        "heidi@example.com",
    }


def test_a_copy_of_a_campaign_keeps_its_segment(make_campaign, staff_user, people):
    made = segment(people, countries=["FR"])
    campaign = make_campaign(segment=made)
    copy = campaigns.campaign_duplicate(campaign=campaign, user=staff_user)
    assert copy.segment == made


def test_a_period_ending_before_it_starts_is_refused(people):
    from django.core.exceptions import ValidationError

    bad = AudienceSegment(name="Backwards", registered_from=date(2026, 5, 1), registered_until=date(2026, 4, 1))
    with pytest.raises(ValidationError) as refused:
        bad.full_clean()
    assert "registered_until" in refused.value.message_dict
