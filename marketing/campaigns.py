"""
A campaign's life cycle, as staff drive it: save a draft, schedule it, send it now, unschedule,
pause, resume, cancel, duplicate; preview it and send a test. Admin actions and commands call
these. A change that leaves work for the workers returns it (`dispatch.SendWork`): the caller
hands it to `tasks.work_enqueue`, which enqueues it after commit.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import datetime

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.core.mail import EmailMessage, mail_admins
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from customers.models import Customer

from .access import AccessLog, access_log_record
from .dispatch import SendWork, batch_ranges
from .emails import CampaignMessageBuilder, OutgoingMessage
from .models import Campaign, CampaignAction, Delivery
from .selectors import campaign_feedback_rates
from .smtp import PermanentSendError, Sender, TransientSendError

logger = logging.getLogger(__name__)

# The fields a copy takes over from the campaign it duplicates: what it says and to whom.
CONTENT_FIELDS = (
    "purpose",
    "subject",
    "text_body",
    "html_body",
    "from_email",
    "reply_to",
    "filter_country",
    "filter_language",
    "filter_product",
)


class CampaignActionRefused(ValidationError):
    pass


def _log(campaign: Campaign, action: str, user: AbstractBaseUser | None, note: str = "") -> None:
    CampaignAction.objects.create(campaign=campaign, action=action, staff_user=user, note=note[:500])


def _refusal(current: Campaign, template: str) -> CampaignActionRefused:
    status = current.get_status_display()
    return CampaignActionRefused(template.format(status=status, status_lower=status.lower()))


def _change_state(
    campaign: Campaign,
    *,
    user: AbstractBaseUser | None,
    action: str,
    allowed: tuple[str, ...],
    refused: str,
    change: Callable[[Campaign], str],
) -> Campaign:
    """
    Every state change: lock the campaign's row (until the caller's transaction ends), refuse
    unless its status is one of `allowed` (`refused` may name {status} or {status_lower}),
    apply `change` to the locked row (it saves what it changes and returns the note to log),
    log the action with who did it, and copy the new state onto the caller's instance.
    Returns the locked row.
    """
    current = Campaign.objects.select_for_update().get(pk=campaign.pk)
    if current.status not in allowed:
        raise _refusal(current, refused)
    note = change(current)
    _log(current, action, user, note)
    for name in (
        "status",
        "scheduled_at",
        "scheduled_by_id",
        "dispatched_at",
        "finished_at",
        "paused_at",
        "pause_reason",
        "resumed_at",
        "resumed_by_id",
    ):
        setattr(campaign, name, getattr(current, name))
    return current


def campaign_lock_draft(*, campaign: Campaign) -> Campaign:
    """
    Lock the campaign's row until the caller's transaction ends, and refuse unless it is still
    a draft. A form that calls this in its validation, inside the transaction that then saves,
    turns "scheduled by someone else meanwhile" into a form error: nobody can schedule the
    campaign between the check and the save.
    """
    current = Campaign.objects.select_for_update().get(pk=campaign.pk)
    if current.status != Campaign.Status.DRAFT:
        raise _refusal(current, "Only drafts can be edited; this campaign is {status}.")
    return current


@transaction.atomic
def campaign_save_draft(*, campaign: Campaign, user: AbstractBaseUser | None) -> Campaign:
    """Create or edit a draft. Templates are checked here: a broken one is refused with the error."""
    if campaign.pk is not None:
        campaign_lock_draft(campaign=campaign)
    elif user is not None and campaign.created_by_id is None:
        campaign.created_by = user
    campaign.status = Campaign.Status.DRAFT
    campaign.full_clean()
    campaign.save()
    _log(campaign, CampaignAction.Action.SAVED, user)
    return campaign


def schedule_time_problem(at: datetime | None, *, now: datetime | None = None) -> str:
    """Why a draft cannot be scheduled for `at`, or "" (shared by the form and the service)."""
    if at is None:
        return "Enter the time to send at. To send straight away, use “Send now”."
    if at <= (now or timezone.now()):
        return "The time to send at has passed. Enter a time in the future, or use “Send now”."
    return ""


@transaction.atomic
def campaign_schedule(*, campaign: Campaign, user: AbstractBaseUser | None, at: datetime | None) -> Campaign:
    """Schedule a draft for a time in the future; a missing or past time is refused (see campaign_send_now)."""
    problem = schedule_time_problem(at)
    if problem or at is None:
        raise CampaignActionRefused(problem)

    def schedule(current: Campaign) -> str:
        current.full_clean()
        current.status = Campaign.Status.SCHEDULED
        current.scheduled_at = at
        current.scheduled_by = user
        current.save(update_fields=["status", "scheduled_at", "scheduled_by"])
        return f"send at {timezone.localtime(at):%Y-%m-%d %H:%M %Z}"

    _change_state(
        campaign,
        user=user,
        action=CampaignAction.Action.SCHEDULED,
        allowed=(Campaign.Status.DRAFT,),
        refused="Only a draft can be scheduled; this campaign is {status}.",
        change=schedule,
    )
    return campaign


@transaction.atomic
def campaign_send_now(*, campaign: Campaign, user: AbstractBaseUser | None) -> SendWork:
    """Schedule a draft for now: the returned work runs the dispatcher at once, not at the next tick."""

    def send_now(current: Campaign) -> str:
        current.full_clean()
        current.status = Campaign.Status.SCHEDULED
        current.scheduled_at = timezone.now()
        current.scheduled_by = user
        current.save(update_fields=["status", "scheduled_at", "scheduled_by"])
        return "send now"

    _change_state(
        campaign,
        user=user,
        action=CampaignAction.Action.SCHEDULED,
        allowed=(Campaign.Status.DRAFT,),
        refused="Only a draft can be sent; this campaign is {status}.",
        change=send_now,
    )
    return SendWork(dispatch_due=True, campaign_ids=[campaign.pk])


@transaction.atomic
def campaign_unschedule(*, campaign: Campaign, user: AbstractBaseUser | None) -> Campaign:
    """Back to a draft (its time kept, to be edited), as long as nothing has been dispatched."""

    def unschedule(current: Campaign) -> str:
        if current.dispatched_at is not None or Delivery.objects.filter(campaign=current).exists():
            raise CampaignActionRefused(
                "Sending has started: this campaign can be paused or cancelled, not unscheduled."
            )
        current.status = Campaign.Status.DRAFT
        current.scheduled_by = None
        current.save(update_fields=["status", "scheduled_by"])
        return ""

    _change_state(
        campaign,
        user=user,
        action=CampaignAction.Action.UNSCHEDULED,
        allowed=(Campaign.Status.SCHEDULED, Campaign.Status.PAUSED),
        refused="Only a scheduled campaign can be unscheduled; this one is {status}.",
        change=unschedule,
    )
    return campaign


@transaction.atomic
def campaign_pause(*, campaign: Campaign, user: AbstractBaseUser | None) -> Campaign:
    """Stop new claims. Rows already claimed finish; nothing is re-sent on resume."""

    def pause(current: Campaign) -> str:
        current.status = Campaign.Status.PAUSED
        current.paused_at = timezone.now()
        current.pause_reason = ""
        current.save(update_fields=["status", "paused_at", "pause_reason"])
        return ""

    _change_state(
        campaign,
        user=user,
        action=CampaignAction.Action.PAUSED,
        allowed=(Campaign.Status.SCHEDULED, Campaign.Status.SENDING),
        refused="Only a scheduled or sending campaign can be paused; this one is {status}.",
        change=pause,
    )
    return campaign


@transaction.atomic
def campaign_resume(*, campaign: Campaign, user: AbstractBaseUser | None) -> SendWork:
    """
    Continue with the rows still queued (never those sent, sending or unknown). Who resumed it
    and when is kept on the campaign and in its log; after an automatic pause the log names the
    figures they decided to go on with, and the rates that pause it count afresh from now.
    """
    work = SendWork(campaign_ids=[campaign.pk])

    def resume(current: Campaign) -> str:
        current.resumed_at = timezone.now()
        current.resumed_by = user
        if current.dispatched_at is None:
            current.status = Campaign.Status.SCHEDULED
            work.dispatch_due = current.scheduled_at <= timezone.now()
        else:
            current.status = Campaign.Status.SENDING
            work.batches = batch_ranges(current.pk)
        current.save(update_fields=["status", "resumed_at", "resumed_by"])
        return f"after it paused itself: {current.pause_reason}" if current.pause_reason else ""

    _change_state(
        campaign,
        user=user,
        action=CampaignAction.Action.RESUMED,
        allowed=(Campaign.Status.PAUSED,),
        refused="Only a paused campaign can be resumed; this one is {status}.",
        change=resume,
    )
    return work


def campaign_check_rates(*, campaign_id: int) -> Campaign | None:
    """
    Pause a sending campaign whose hard-bounce or complaint rate crossed its threshold
    (MARKETING_PAUSE_*, after MARKETING_PAUSE_MIN_SAMPLE messages); returns it if it paused.
    Called after each bounce or complaint a provider reports for the campaign.
    """
    campaign = Campaign.objects.filter(pk=campaign_id, status=Campaign.Status.SENDING).first()
    if campaign is None:
        return None
    reason = campaign_feedback_rates(campaign).pause_reason()
    if not reason:
        return None
    try:
        return campaign_pause_automatically(campaign=campaign, reason=reason)
    except CampaignActionRefused:  # paused, cancelled or finished meanwhile
        return None


@transaction.atomic
def campaign_pause_automatically(*, campaign: Campaign, reason: str) -> Campaign:
    """
    The campaign pauses itself: no batch claims another of its rows (the claim checks the
    campaign is sending), and the staff who scheduled it are told by email with the figures.
    Only staff resume it (campaign_resume).
    """

    def pause(current: Campaign) -> str:
        current.status = Campaign.Status.PAUSED
        current.paused_at = timezone.now()
        current.pause_reason = reason[:500]
        current.save(update_fields=["status", "paused_at", "pause_reason"])
        return reason

    current = _change_state(
        campaign,
        user=None,
        action=CampaignAction.Action.AUTO_PAUSED,
        allowed=(Campaign.Status.SENDING,),
        refused="Only a sending campaign pauses itself; this one is {status_lower}.",
        change=pause,
    )
    transaction.on_commit(lambda: _tell_staff_of_pause(current.pk))
    return campaign


def _tell_staff_of_pause(campaign_id: int) -> None:
    campaign = Campaign.objects.select_related("scheduled_by", "created_by").filter(pk=campaign_id).first()
    if campaign is None:
        return
    recipients = sorted(
        {user.email for user in (campaign.scheduled_by, campaign.created_by) if user is not None and user.email}
    )
    context = {
        "campaign": campaign,
        "rates": campaign_feedback_rates(campaign),
        "bounce_limit": f"{settings.MARKETING_PAUSE_BOUNCE_RATE:.1%}",
        "complaint_limit": f"{settings.MARKETING_PAUSE_COMPLAINT_RATE:.2%}",
        "campaign_url": settings.SITE_URL + reverse("admin:marketing_campaign_change", args=[campaign.pk]),
    }
    subject = f"Campaign paused itself: {campaign.name}"
    body = render_to_string("marketing/email/campaign_paused.txt", context)
    try:
        if recipients:
            EmailMessage(subject=subject, body=body, to=recipients).send()
        else:
            mail_admins(subject, body)
    except Exception:  # the pause holds whether or not the mail goes out; the banner shows it
        logger.exception("Could not tell staff that campaign %s paused itself", campaign_id)


@transaction.atomic
def campaign_cancel(*, campaign: Campaign, user: AbstractBaseUser | None) -> Campaign:
    """Queued rows become skipped; a row already claimed may still finish. Nothing is re-sent."""

    def cancel(current: Campaign) -> str:
        if current.status == Campaign.Status.DRAFT and current.scheduled_at is None:
            current.scheduled_at = timezone.now()  # a cancelled campaign names when it stopped
        current.status = Campaign.Status.CANCELLED
        current.finished_at = timezone.now()
        current.save(update_fields=["status", "finished_at", "scheduled_at"])
        skipped = Delivery.objects.filter(campaign=current, status=Delivery.Status.QUEUED).update(
            status=Delivery.Status.SKIPPED, skip_reason=Delivery.SkipReason.CANCELLED
        )
        return f"{skipped} queued message(s) skipped"

    _change_state(
        campaign,
        user=user,
        action=CampaignAction.Action.CANCELLED,
        allowed=tuple(s for s in Campaign.Status.values if s not in (Campaign.Status.SENT, Campaign.Status.CANCELLED)),
        refused="This campaign is already {status_lower}.",
        change=cancel,
    )
    return campaign


@transaction.atomic
def campaign_duplicate(*, campaign: Campaign, user: AbstractBaseUser | None) -> Campaign:
    """A new draft with the campaign's message and audience (any campaign, whatever its status)."""
    copy = Campaign(
        name=f"Copy of {campaign.name}"[: Campaign._meta.get_field("name").max_length],
        created_by=user,
        **{name: getattr(campaign, name) for name in CONTENT_FIELDS},
    )
    copy.full_clean()
    copy.save()
    _log(copy, CampaignAction.Action.DUPLICATED, user, note=f"copy of “{campaign.name}” (#{campaign.pk})")
    return copy


# ---------------------------------------------------------------------------------------
# Preview and test


def _stand_in(customer: Customer, *, email: str) -> Customer:
    """
    A customer-shaped recipient with the details shown, and links that lead nowhere (a public
    ID nobody has): a click in a preview or a test withdraws nothing and opens nobody's page.
    """
    return Customer(
        public_id=uuid.uuid4(),
        email=email,
        first_name=customer.first_name,
        last_name=customer.last_name,
        company=customer.company,
        job_title=customer.job_title,
        country=customer.country,
    )


def campaign_preview(*, campaign: Campaign, customer: Customer, user: AbstractBaseUser) -> OutgoingMessage:
    """
    The message as `customer` would receive it, with dead links in place of their live
    preference and unsubscribe links. A preview of a real customer is a look at their data:
    it is recorded in the access log.
    """
    message = CampaignMessageBuilder(campaign).build(_stand_in(customer, email=customer.email))
    if customer.pk is not None:
        access_log_record(
            staff_user=user,
            action=AccessLog.Action.VIEWED,
            customer=customer,
            detail=f"Previewed campaign #{campaign.pk} for this customer",
        )
    return message


def campaign_send_test(
    *, campaign: Campaign, user: AbstractBaseUser, customer: Customer | None = None
) -> OutgoingMessage:
    """Send the campaign, marked as a test, to the staff user's own address. Creates no delivery."""
    if not getattr(user, "email", ""):
        raise CampaignActionRefused("Your staff account has no email address to send the test to.")
    campaign.full_clean()
    source = customer or Customer(
        first_name=getattr(user, "first_name", "") or "Test",
        last_name=getattr(user, "last_name", ""),
        company=settings.COMPANY_NAME,
    )
    message = CampaignMessageBuilder(campaign).build(_stand_in(source, email=user.email), test=True)
    sender = Sender()
    try:
        sender.send(message)
    except (TransientSendError, PermanentSendError) as error:
        raise CampaignActionRefused(f"The test could not be sent: {error}") from error
    finally:
        sender.close()
    _log(campaign, CampaignAction.Action.TEST_SENT, user, note=f"to {user.email}")
    return message
