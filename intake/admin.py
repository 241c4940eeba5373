import json

from django.contrib import admin, messages
from django.db import transaction
from django.utils.html import format_html

from . import services, tasks
from .models import SignupRequest, WebhookEvent


@admin.register(WebhookEvent)
class WebhookEventAdmin(admin.ModelAdmin):
    list_display = ["event_type", "provider", "status", "occurred_at", "received_at", "attempts", "short_error"]
    list_filter = ["status", "provider", "event_type"]
    search_fields = ["=event_id", "=subject_id"]
    list_select_related = ["customer"]
    raw_id_fields = ["customer"]
    date_hierarchy = "received_at"
    show_full_result_count = False
    actions = ["process_again"]
    fields = [
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
    ]
    readonly_fields = fields

    @admin.display(description="error")
    def short_error(self, obj: WebhookEvent) -> str:
        return obj.error[:120]

    @admin.display(description="payload")
    def payload_pretty(self, obj: WebhookEvent) -> str:
        return format_html("<pre style='white-space:pre-wrap'>{}</pre>", json.dumps(obj.payload, indent=2))

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        # Viewable, and "process again" is an action; the stored notification is never edited.
        return False

    @admin.action(description="Process again", permissions=["view"])
    def process_again(self, request, queryset) -> None:
        events = list(queryset)
        reset = services.webhook_events_reset(events=events)
        for event in events:
            transaction.on_commit(lambda pk=event.pk: tasks.webhook_event_process.delay(pk))
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
