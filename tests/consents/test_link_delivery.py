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


class RefusingInbox(Inbox):
    """A relay that refuses one recipient with the given reply, as a real one names the address."""

    def __init__(self, reply: str):
        super().__init__()
        self.reply = reply
        self.attempts = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        self.attempts += 1
        return self.reply.format(address=address)


@pytest.fixture
def refusing_smtp_server(smtp_server, settings):
    """The same settings as smtp_server, pointed at a relay whose reply each test chooses."""
    servers = []

    def start(reply: str) -> RefusingInbox:
        inbox = RefusingInbox(reply)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        controller = Controller(inbox, hostname="127.0.0.1", port=port)
        controller.start()
        servers.append(controller)
        settings.EMAIL_PORT = port
        return inbox

    yield start
    for controller in servers:
        controller.stop()


@pytest.fixture
def eager_tasks():
    from config.celery import app as celery_app

    previous = celery_app.conf.task_always_eager, celery_app.conf.task_eager_propagates
    celery_app.conf.task_always_eager, celery_app.conf.task_eager_propagates = True, False
    yield
    celery_app.conf.task_always_eager, celery_app.conf.task_eager_propagates = previous


def test_a_link_email_the_server_refuses_for_good_is_tried_once_and_not_retried(
    refusing_smtp_server, eager_tasks, purposes, monkeypatch
):
    # given Ada's mailbox does not exist any more, and her relay says so with a 550
    CustomerFactory(email="ada@example.com")
    inbox = refusing_smtp_server("550 5.1.1 <{address}>: Recipient address rejected")
    monkeypatch.setattr(tasks.send_preference_link, "retry", lambda *a, **k: pytest.fail("a 5xx was retried"))

    # when the link request runs
    result = tasks.send_preference_link.apply(args=["ada@example.com"])

    # then it was tried once, and ends there without an error
    assert inbox.attempts == 1
    assert result.successful()


def test_a_link_email_the_server_defers_is_retried(refusing_smtp_server, eager_tasks, purposes):
    # given Grace's relay is busy for now (a 4xx)
    CustomerFactory(email="grace@example.com")
    inbox = refusing_smtp_server("451 4.3.0 Try again later")

    # when the link request runs, retries included (eagerly, one after the other)
    result = tasks.send_preference_link.apply(args=["grace@example.com"])

    # then it was tried again, up to the limit
    assert inbox.attempts == 1 + tasks.send_preference_link.max_retries
    assert result.failed()
