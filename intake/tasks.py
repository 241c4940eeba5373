"""Celery entry points of intake: they re-read the event and call a service."""

from celery import shared_task
from django.conf import settings

from . import services, signups
from .models import SignupRequest, WebhookEvent


@shared_task(bind=True, max_retries=None)
def webhook_event_process(self, event_id: int) -> str:
    event = WebhookEvent.objects.filter(pk=event_id).first()
    if event is None:
        return "gone"
    event = services.webhook_event_process(event=event)
    if event.status == WebhookEvent.Status.WAITING:
        if event.attempts >= settings.INTAKE_WAIT_MAX_ATTEMPTS:
            return services.webhook_event_give_up(event=event).status
        # A transaction before its customer: Paddle usually sends the customer within seconds.
        countdown = min(settings.INTAKE_WAIT_FIRST_SECONDS * 2 ** (event.attempts - 1), 3600)
        raise self.retry(countdown=countdown)
    return event.status


@shared_task(autoretry_for=(OSError,), retry_backoff=30, retry_backoff_max=600, max_retries=5)
def signup_request_send(signup_id: int) -> bool:
    signup = SignupRequest.objects.filter(pk=signup_id).first()
    if signup is None:
        return False
    return signups.signup_request_send(signup=signup)
