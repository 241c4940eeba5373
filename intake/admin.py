import functools
import json

from django.contrib import admin, messages
from django.db import transaction
from django.urls import reverse
from django.utils.html import format_html

from customers import admin_parts
from customers.admin import ReadOnlyAdmin
from customers.models import Customer

from . import services, tasks
from .models import SignupRequest, WebhookEvent


@admin.register(WebhookEvent)
class WebhookEventAdmin(ReadOnlyAdmin):
    # Viewable, and "process again" is an action; the stored notification is never edited.
    list_display = ["event_type", "provider", "status", "occurred_at", "received_at", "attempts", "short_error"]
    list_filter = ["status", "provider", "event_type"]
    search_fields = ["=event_id", "=subject_id"]
    list_select_related = ["customer"]
    raw_id_fields = ["customer"]
    date_hierarchy = "received_at"
    show_full_result_count = False
    actions = ["process_again"]
    fields = readonly_fields = (
        "provider",
        "event_id",
        "event_type",
        "occurred_at",
        "received_at",
        "subject_id",
        "customer",
        "status",
        "attempts",
        "error",
        "processed_at",
        "redacted_at",
        "payload_pretty",
    )

    @admin.display(description="error")
    def short_error(self, obj: WebhookEvent) -> str:
        return obj.error[:120]

    @admin.display(description="payload")
    def payload_pretty(self, obj: WebhookEvent) -> str:
        return format_html("<pre style='white-space:pre-wrap'>{}</pre>", json.dumps(obj.payload, indent=2))

    @admin.action(description="Process again", permissions=["view"])
    def process_again(self, request, queryset) -> None:
        events = list(queryset)
        reset = services.webhook_events_reset(events=events)
        for event in events:
            transaction.on_commit(functools.partial(tasks.webhook_event_process.delay, event.pk))
        self.message_user(
            request,
            f"{reset} notification(s) queued to be processed again; finished ones are left as they are.",
            messages.SUCCESS,
        )


@admin.register(SignupRequest)
class SignupRequestAdmin(admin.ModelAdmin):
    """Both steps of each double opt-in, read-only: the proof of what was asked and confirmed."""

    list_display = ["public_id", "kind", "status", "requested_at", "confirmed_at", "expires_at"]
    list_filter = ["kind", "status"]
    search_fields = ["=email", "=public_id"]
    raw_id_fields = ["customer"]
    show_full_result_count = False
    readonly_fields = [f.name for f in SignupRequest._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


def needing_attention(user, customer: Customer | None = None) -> tuple[int, str]:
    """
    How many reseller notifications need a person (all, or one customer's) and the link to
    that filtered list; 0 for staff who may not see them. One COUNT query.
    """
    if not user.has_perm("intake.view_webhookevent"):
        return 0, ""
    events = WebhookEvent.objects.filter(status=WebhookEvent.Status.NEEDS_ATTENTION)
    url = reverse("admin:intake_webhookevent_changelist") + "?status__exact=needs_attention"
    if customer is not None:
        events = events.filter(customer=customer)
        url += f"&customer__id__exact={customer.pk}"
    return events.count(), url


def _attention_label(request, customer: Customer) -> str:
    count, _url = needing_attention(request.user, customer)
    return f"{count} reseller notification{'s' if count != 1 else ''} need{'' if count != 1 else 's'} attention"


def _attention_url(request, customer: Customer) -> str | None:
    count, url = needing_attention(request.user, customer)
    return url if count else None


# The customer's page: a button to the customer's reseller notifications that need a
# person, shown only while there are some.
admin_parts.register(
    admin_parts.CustomerAdminPart(app="intake", links=[admin_parts.Link(label=_attention_label, url=_attention_url)])
)
