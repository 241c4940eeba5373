"""The preference link goes out over real SMTP, and through the project's own Celery queue."""

import email
import re
import socket

import pytest
from aiosmtpd.controller import Controller

from consents import tasks
from consents.tokens import customer_from_preference_token
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db


class Inbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.rcpt_tos, email.message_from_bytes(envelope.content)))
        return "250 OK"


@pytest.fixture
def smtp_server(settings):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    yield inbox
    controller.stop()


def test_the_link_email_reaches_the_customer_over_smtp(smtp_server, purposes):
    ada = CustomerFactory(email="ada@example.com", first_name="Ada")
    tasks.send_preference_link("ada@example.com")
    tasks.send_preference_link("nobody@example.com")

    assert len(smtp_server.messages) == 1
    recipients, message = smtp_server.messages[0]
    assert recipients == ["ada@example.com"]
    assert "email preferences" in message["Subject"]
    body = message.get_payload(decode=True).decode()
    token = re.search(r"/preferences/(\S+)/", body).group(1)
    assert customer_from_preference_token(token) == ada


@pytest.mark.redis
def test_the_link_request_is_queued_on_the_projects_own_queue_after_commit(
    client, settings, django_capture_on_commit_callbacks
):
    import redis

    from config.celery import app as celery_app

    queue = settings.CELERY_TASK_DEFAULT_QUEUE
    connection = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    connection.delete(queue)
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = False
    try:
        # the test's transaction is never committed, so run the on-commit callbacks by hand
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            client.post("/preferences/", {"email": "someone@example.com"})
        assert connection.llen(queue) == 0  # nothing before the commit
        for callback in callbacks:
            callback()
        assert connection.llen(queue) == 1
        queued = connection.lpop(queue).decode()
        assert "consents.tasks.send_preference_link" in queued
    finally:
        celery_app.conf.task_always_eager = previous
        connection.delete(queue)
