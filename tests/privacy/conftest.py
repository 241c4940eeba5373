import pytest

from api.models import WebhookEndpoint, WebhookEventType
from api.webhooks import webhook_endpoint_save
from consents.models import Purpose, Source
from consents.services import consent_set
from customers.imports import customers_import
from marketing import campaigns
from marketing.feedback import ProviderEvent, delivery_event_record
from marketing.models import Campaign, Delivery
from tests.consents.people import ensure_purposes
from tests.marketing.helpers import SMTPServer

from .people import AUGUSTA, IMPORTED_CITY, augusta_with_a_full_history, send_campaign, staff_in


@pytest.fixture
def purposes(db):
    return ensure_purposes()


@pytest.fixture
def support(django_user_model):
    return staff_in(django_user_model, "Support", "sam-support")


@pytest.fixture
def marketer(django_user_model):
    return staff_in(django_user_model, "Marketing", "mia-marketing")


@pytest.fixture
def officer(django_user_model):
    return staff_in(django_user_model, "Privacy officer", "olga-officer")


@pytest.fixture
def crm_endpoint(db, settings):
    """A CRM's webhook endpoint allowed personal data: every event about Augusta is queued for it."""
    settings.WEBHOOK_ALLOW_PRIVATE_URLS = True
    endpoint = WebhookEndpoint(
        name="CRM",
        url="http://127.0.0.1:9/hooks",
        events=list(WebhookEventType.values),
        may_receive_personal_data=True,
    )
    webhook_endpoint_save(endpoint=endpoint)
    return endpoint


@pytest.fixture
def augusta_and_request(purposes, support, officer, crm_endpoint):
    """Augusta, with a full history, and her open erasure request (received by letter)."""
    return augusta_with_a_full_history(support_user=support, privacy_officer=officer)


@pytest.fixture
def smtp(settings):
    server = SMTPServer()
    server.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", server.port
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    yield server
    server.stop()


@pytest.fixture
def augusta_through_everything(smtp, client, officer, augusta_and_request, django_user_model, settings):
    augusta, request = augusta_and_request
    marketer = django_user_model.objects.create_superuser("mo", "mo@staff.example", "correct horse battery")
    consent_set(
        customer=augusta, purpose=Purpose.objects.get(code="newsletter"), granted=True, source=Source.PREFERENCE_PAGE
    )
    # an import corrected her city
    customers_import(headers=["email", "city"], rows=[{"email": AUGUSTA["email"], "city": IMPORTED_CITY}], update=True)
    # she asked for her link (the mail goes out at once, as a worker would send it)
    settings.CELERY_TASK_ALWAYS_EAGER = True
    client.post("/preferences/", {"email": AUGUSTA["email"]})
    # a campaign reached her, a second failed on a policy reply and a third bounced:
    # both replies name her address
    send_campaign("Spring", marketer)
    smtp.handler.replies = {AUGUSTA["email"]: f"554 5.7.1 <{AUGUSTA['email']}>: rejected by policy"}
    send_campaign("Summer", marketer)
    smtp.handler.replies = {AUGUSTA["email"]: f"550 5.1.1 <{AUGUSTA['email']}>: Recipient address rejected"}
    send_campaign("Autumn", marketer)
    smtp.handler.replies = {}
    # her provider reported the Spring message as delayed, quoting her mailbox's reply
    spring = Delivery.objects.get(campaign__name="Spring", customer=augusta)
    delivery_event_record(
        event=ProviderEvent(
            provider="postmark",
            kind="soft_bounced",
            recipient=AUGUSTA["email"],
            event_id="augusta-soft-bounce",
            message_ids=[spring.message_id],
            reason=f"452 4.2.2 Mailbox of {AUGUSTA['first_name']} is full",
        )
    )
    # staff previewed a campaign with her details in a test send to themselves
    campaigns.campaign_send_test(campaign=Campaign.objects.get(name="Spring"), user=marketer, customer=augusta)
    # a checked import, not yet confirmed, holds her row and another customer's
    from dashboard.imports import import_check

    import_check(
        data=f"email,city\n{AUGUSTA['email'].upper()},Bath\nnot.augusta@example.com,York\n".encode(),
        file_name="crm-export.csv",
        staff_user=marketer,
        update=True,
    )
    augusta.refresh_from_db()
    return augusta, request
