import pytest
from django.contrib.auth.models import Permission
from django.core import mail
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from marketing import campaigns, dispatch
from marketing.models import Campaign, CampaignAction, Delivery, ExportLog

from .helpers import customer_who_consents, purpose

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, staff_user):
    client.force_login(staff_user)
    return client


@pytest.fixture
def marketer(django_user_model):
    """Marketing staff who may run campaigns but not look customers up."""
    user = django_user_model.objects.create_user("mia", "mia@example.com", "correct horse battery", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label="marketing", codename__startswith="view_")
        | Permission.objects.filter(codename__in=["change_campaign", "add_campaign"])
    )
    return user


def test_a_draft_with_a_broken_template_is_refused_with_the_error_and_not_saved(admin_client, purposes):
    response = admin_client.post(
        "/admin/marketing/campaign/add/",
        {
            "name": "Leaky",
            "purpose": purpose("newsletter").pk,
            "subject_en": "Hi {{ first_name }}",
            "text_body_en": "{{ settings.SECRET_KEY }}",
            "html_body_en": "",
            "fallback_language": "en",
            "from_email": "news@example.com",
            "reply_to": "",
            "actions-TOTAL_FORMS": "0",
            "actions-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 200
    assert "{{ settings.SECRET_KEY }}” is not allowed" in response.content.decode()
    assert not Campaign.objects.exists()


def test_staff_see_the_audience_preview_a_customer_and_send_a_test_to_themselves(
    admin_client, make_campaign, staff_user, settings
):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    customer_who_consents(email="ada@example.com", first_name="Ada")
    customer_who_consents(email="grace@example.com", first_name="Grace")
    campaign = make_campaign()

    page = admin_client.get(f"/admin/marketing/campaign/{campaign.pk}/change/").content.decode()
    assert "Audience now:</strong> 2 customers" in page

    preview = admin_client.get(f"/admin/marketing/campaign/{campaign.pk}/preview/?customer=grace@example.com")
    assert "Spring news for Grace" in preview.content.decode()

    response = admin_client.post(f"/admin/marketing/campaign/{campaign.pk}/action/test/")
    assert response.status_code == 302
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["marketer@example.com"]
    assert mail.outbox[0].subject == "[TEST] Spring news for Test"
    assert not Delivery.objects.exists()
    assert CampaignAction.objects.filter(action="test_sent", staff_user=staff_user).exists()


def test_schedule_and_pause_from_admin_record_the_staff_user_and_show_progress(
    admin_client, make_campaign, staff_user, django_capture_on_commit_callbacks
):
    customer_who_consents(email="ada@example.com")
    campaign = make_campaign()

    admin_client.post(
        f"/admin/marketing/campaign/{campaign.pk}/change/",
        draft_form(campaign, scheduled_at_0="2099-01-01", scheduled_at_1="09:00", _schedule="Save and schedule…"),
    )
    campaign.refresh_from_db()
    with django_capture_on_commit_callbacks(execute=False):
        admin_client.post(
            f"/admin/marketing/campaign/{campaign.pk}/schedule/", {"send_at": campaign.scheduled_at.isoformat()}
        )
    campaign.refresh_from_db()
    assert (campaign.status, campaign.scheduled_by) == (Campaign.Status.SCHEDULED, staff_user)
    assert campaign.scheduled_at.year == 2099

    admin_client.post(f"/admin/marketing/campaign/{campaign.pk}/action/pause/")
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.PAUSED
    assert list(campaign.actions.values_list("action", "staff_user")) == [
        ("paused", staff_user.pk),
        ("scheduled", staff_user.pk),
        ("saved", staff_user.pk),
    ]
    # A GET never changes anything.
    assert admin_client.get(f"/admin/marketing/campaign/{campaign.pk}/action/resume/").status_code == 405


def test_the_campaign_page_shows_counts_per_status_and_a_progress_bar(admin_client, make_campaign, staff_user):
    customer_who_consents(email="ada@example.com")
    customer_who_consents(email="grace@example.com")
    campaign = make_campaign()
    campaigns.campaign_send_now(campaign=campaign, user=staff_user)
    dispatch.campaigns_dispatch_due()
    Delivery.objects.filter(pk=Delivery.objects.first().pk).update(status="sent")

    page = admin_client.get(f"/admin/marketing/campaign/{campaign.pk}/change/").content.decode()
    assert '<progress max="2" value="1"' in page
    assert "<td>1</td><td>0</td><td>1</td><td>0</td><td>0</td><td>0</td>" in page


def test_the_campaign_list_shows_progress_with_as_many_queries_for_six_campaigns_as_for_two(
    admin_client, make_campaign
):
    ada = customer_who_consents(email="ada@example.com")
    grace = customer_who_consents(email="grace@example.com")

    def campaign_half_sent(number: int) -> None:
        campaign = make_campaign(name=f"Campaign {number}")
        Campaign.objects.filter(pk=campaign.pk).update(status=Campaign.Status.SENDING, scheduled_at=campaign.created_at)
        Delivery.objects.create(campaign=campaign, customer=ada, status=Delivery.Status.SENT)
        Delivery.objects.create(campaign=campaign, customer=grace, status=Delivery.Status.QUEUED)

    def open_the_list() -> tuple[str, int]:
        with CaptureQueriesContext(connection) as queries:
            response = admin_client.get("/admin/marketing/campaign/")
        assert response.status_code == 200
        return response.content.decode(), len(queries)

    for number in range(2):
        campaign_half_sent(number)
    make_campaign(name="A draft")
    page, queries_for_two = open_the_list()
    assert page.count('<progress max="2" value="1"></progress> 1/2') == 2

    for number in range(2, 6):
        campaign_half_sent(number)
    page, queries_for_six = open_the_list()
    assert page.count('<progress max="2" value="1"></progress> 1/2') == 6
    assert queries_for_six == queries_for_two


def test_marketing_staff_without_customer_access_do_not_see_addresses_in_the_delivery_list(
    admin_client, marketer, make_campaign, staff_user
):
    ada = customer_who_consents(email="ada@example.com")
    campaign = make_campaign()
    campaigns.campaign_send_now(campaign=campaign, user=staff_user)
    dispatch.campaigns_dispatch_due()

    client = Client()
    client.force_login(marketer)
    page = client.get("/admin/marketing/delivery/").content.decode()
    assert "ada@example.com" not in page
    assert str(ada.public_id) in page
    assert "ada@example.com" in admin_client.get("/admin/marketing/delivery/").content.decode()


def test_exports_download_from_admin_and_are_logged_with_who(admin_client, staff_user, purposes):
    customer_who_consents("market_research", first_name="Ada")
    response = admin_client.post("/admin/marketing/exportlog/download/call_list/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert "Ada" in response.content.decode()
    assert ExportLog.objects.get().staff_user == staff_user
    page = admin_client.get("/admin/marketing/exportlog/").content.decode()
    assert "Market-research call list: 1 customers" in page
    assert "marketer" in page


def test_staff_without_the_export_permission_cannot_download(client, marketer, purposes):
    client.force_login(marketer)
    assert client.post("/admin/marketing/exportlog/download/call_list/").status_code == 403


def test_staff_suppress_an_address_in_admin_and_only_its_hash_is_kept(admin_client, staff_user, purposes):
    response = admin_client.post(
        "/admin/marketing/suppression/add/", {"email": " Ada@Example.com", "reason": "staff", "note": "asked by phone"}
    )
    assert response.status_code == 302
    from customers.models import email_hash
    from marketing.models import Suppression

    suppression = Suppression.objects.get()
    assert (suppression.address_hash, suppression.created_by) == (email_hash("ada@example.com"), staff_user)
    found = admin_client.get("/admin/marketing/suppression/?q=ada@example.com").content.decode()
    assert suppression.address_hash in found
    assert "ada@example.com" not in found.replace('value="ada@example.com"', "")


def test_a_delivery_page_opens_for_both_kinds_of_staff(admin_client, marketer, make_campaign, staff_user):
    customer_who_consents(email="ada@example.com")
    campaign = make_campaign()
    campaigns.campaign_send_now(campaign=campaign, user=staff_user)
    dispatch.campaigns_dispatch_due()
    delivery = Delivery.objects.get()
    assert "ada@example.com" in admin_client.get(f"/admin/marketing/delivery/{delivery.pk}/change/").content.decode()
    client = Client()
    client.force_login(marketer)
    page = client.get(f"/admin/marketing/delivery/{delivery.pk}/change/")
    assert page.status_code == 200
    assert "ada@example.com" not in page.content.decode()


def draft_form(campaign, **changes) -> dict[str, str]:
    """What the campaign's change form posts, as a member of staff would send it."""
    data = {
        "name": campaign.name,
        "purpose": str(campaign.purpose_id),
        "subject_en": campaign.subject_en,
        "text_body_en": campaign.text_body_en,
        "html_body_en": campaign.html_body_en,
        "fallback_language": campaign.fallback_language,
        "from_email": campaign.from_email,
        "reply_to": campaign.reply_to,
        "filter_country": "",
        "filter_language": "",
        "filter_product": "",
        "scheduled_at_0": "",
        "scheduled_at_1": "",
        "actions-TOTAL_FORMS": "0",
        "actions-INITIAL_FORMS": "0",
        "_save": "Save",
    }
    data.update(changes)
    return data


def test_a_draft_form_saves_the_changes_and_records_who(admin_client, make_campaign, staff_user):
    campaign = make_campaign()
    response = admin_client.post(
        f"/admin/marketing/campaign/{campaign.pk}/change/", draft_form(campaign, subject_en="Summer news")
    )
    assert response.status_code == 302
    campaign.refresh_from_db()
    assert campaign.subject == "Summer news"
    assert campaign.actions.filter(action="saved", staff_user=staff_user).exists()


def test_a_sending_campaign_cannot_be_edited_and_a_stale_form_loses_nothing(
    admin_client, make_campaign, staff_user, django_user_model
):
    # given Ada opened the draft's form, and Grace scheduled the campaign meanwhile
    campaign = make_campaign()
    page = admin_client.get(f"/admin/marketing/campaign/{campaign.pk}/change/").content.decode()
    assert 'name="_save"' in page
    grace = django_user_model.objects.create_user("grace", "grace@example.com", is_staff=True)
    campaigns.campaign_schedule(campaign=campaign, user=grace, at=campaign.created_at.replace(year=2099))
    page = admin_client.get(f"/admin/marketing/campaign/{campaign.pk}/change/").content.decode()
    assert 'name="_save"' not in page

    # when Ada saves her stale form with a new subject
    response = admin_client.post(
        f"/admin/marketing/campaign/{campaign.pk}/change/", draft_form(campaign, subject_en="Edited too late")
    )

    # then the form comes back with the reason and her text, and nothing was saved
    assert response.status_code == 200
    page = response.content.decode()
    assert "Only drafts can be edited; this campaign is Scheduled. Your changes below were not saved." in page
    assert 'value="Edited too late"' in page
    assert "changed successfully" not in page
    assert not list(response.context["messages"])
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.SCHEDULED
    assert campaign.subject == 'Spring news for {{ first_name|default:"you" }}'
    assert not campaign.actions.filter(action="saved").exists()


def test_a_draft_scheduled_while_its_form_is_being_saved_is_refused_as_a_form_error(
    admin_client, make_campaign, staff_user, monkeypatch
):
    """The admin had read the draft for this very request when someone else scheduled it."""
    from marketing.admin import CampaignAdmin

    campaign = make_campaign()
    read_the_draft = CampaignAdmin.get_object

    def scheduled_right_after_reading(self, request, object_id, from_field=None):
        draft = read_the_draft(self, request, object_id, from_field)
        if request.method == "POST" and draft.is_editable:
            campaigns.campaign_send_now(campaign=Campaign.objects.get(pk=campaign.pk), user=staff_user)
        return draft

    monkeypatch.setattr(CampaignAdmin, "get_object", scheduled_right_after_reading)
    response = admin_client.post(
        f"/admin/marketing/campaign/{campaign.pk}/change/", draft_form(campaign, subject_en="Edited too late")
    )

    assert response.status_code == 200
    page = response.content.decode()
    assert "Only drafts can be edited; this campaign is Scheduled. Your changes below were not saved." in page
    assert "changed successfully" not in page
    assert not list(response.context["messages"])
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.SCHEDULED
    assert campaign.subject == 'Spring news for {{ first_name|default:"you" }}'
    assert not campaign.actions.filter(action="saved").exists()
