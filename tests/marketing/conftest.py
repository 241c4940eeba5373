import pytest
from django.db import close_old_connections, connections

from config.celery import app as celery_app
from marketing.models import Campaign

from .helpers import SMTPServer, customer_who_consents, ensure_purposes, purpose


@pytest.fixture(autouse=True)
def _marketing_urls(settings):
    settings.ROOT_URLCONF = "tests.marketing.urls"
    settings.SITE_URL = "https://consent.example.com"


@pytest.fixture
def purposes(db):
    ensure_purposes()


@pytest.fixture
def smtp(settings):
    server = SMTPServer()
    server.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = server.port
    settings.EMAIL_HOST_USER = ""
    settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_USE_TLS = False
    settings.EMAIL_USE_SSL = False
    settings.EMAIL_TIMEOUT = 10
    yield server
    server.stop()


@pytest.fixture
def eager_celery():
    """SQLite tests run the tasks in-process, exactly as a worker would call them."""
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = previous


@pytest.fixture
def celery_worker_thread(settings):
    """A real Celery worker in a thread, consuming our own queue on the Redis broker."""
    from celery.contrib.testing.worker import start_worker
    from celery.signals import task_postrun

    def close_connections(**kwargs):
        close_old_connections()
        for conn in connections.all(initialized_only=True):
            conn.close()

    task_postrun.connect(close_connections, weak=False)
    with start_worker(celery_app, pool="solo", concurrency=1, perform_ping_check=False, shutdown_timeout=20):
        yield
    task_postrun.disconnect(close_connections)


@pytest.fixture
def staff_user(django_user_model):
    return django_user_model.objects.create_superuser("marketer", "marketer@example.com", "correct horse battery")


@pytest.fixture
def make_campaign(purposes, staff_user):
    def make(**fields) -> Campaign:
        values = {
            "name": "Spring newsletter",
            "purpose": purpose("newsletter"),
            "subject": 'Spring news for {{ first_name|default:"you" }}',
            "text_body": "Hello {{ first_name }},\n\nPhotoForge 5 is out.",
            "html_body": "<p>Hello {{ first_name }},</p><p>PhotoForge 5 is out.</p>",
            "created_by": staff_user,
        }
        values.update(fields)
        campaign = Campaign(**values)
        campaign.full_clean()
        campaign.save()
        return campaign

    return make


@pytest.fixture
def ada_received_the_newsletter(smtp, make_campaign, staff_user):
    """Ada consents to the newsletter, promotions and internal analysis; the spring newsletter reached her."""
    from consents.models import Source
    from consents.services import consent_grant
    from marketing.models import Delivery

    from .feedback_helpers import send_campaign

    ada = customer_who_consents(email="ada@example.com", first_name="Ada")
    for code in ("promotions", "internal_analysis"):
        consent_grant(customer=ada, purpose=purpose(code), source=Source.SIGNUP_FORM)
    campaign = make_campaign()
    send_campaign(campaign, staff_user)
    delivery = Delivery.objects.get(campaign=campaign, customer=ada)
    assert delivery.status == Delivery.Status.SENT
    assert delivery.message_id == smtp.handler.received()[0]["Message-ID"]
    return ada, campaign, delivery
