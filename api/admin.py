import json

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from rest_framework_api_key.admin import APIKeyModelAdmin
from rest_framework_api_key.models import APIKey as UnusedPackageKey

from . import webhooks
from .models import (
    WEBHOOK_EVENT_DESCRIPTIONS,
    ApiKey,
    Scope,
    WebhookAttempt,
    WebhookEndpoint,
    WebhookEventType,
    WebhookMessage,
)
from .services import api_key_create
from .tasks import webhook_messages_enqueue

# The package's own key model is not used: ours carries scopes.
if admin.site.is_registered(UnusedPackageKey):
    admin.site.unregister(UnusedPackageKey)


class ApiKeyForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(choices=Scope.choices, widget=forms.CheckboxSelectMultiple)

    class Meta:
        model = ApiKey
        fields = ["name", "scopes", "expiry_date", "revoked"]


@admin.register(ApiKey)
class ApiKeyAdmin(APIKeyModelAdmin):
    """Superusers and privacy officers create keys; the key is shown once, in the message after saving."""

    form = ApiKeyForm
    # djangorestframework-api-key types its own lists as tuples of a fixed length: ours are longer.
    list_display = ["prefix", "name", "scope_list", "created", "last_used_at", "expiry_date", "_has_expired", "revoked"]  # type: ignore[assignment]
    list_filter = ["revoked", "created"]  # type: ignore[assignment]
    search_fields = ["name", "prefix"]  # type: ignore[assignment]
    readonly_fields = ["prefix", "created", "last_used_at", "created_by"]

    @admin.display(description="scopes")
    def scope_list(self, obj: ApiKey) -> str:
        return ", ".join(obj.scopes)

    def get_readonly_fields(self, request, obj=None):
        if obj is not None:
            # A key's scopes and name are fixed once it exists: make a new key instead.
            return [*self.readonly_fields, "name", "scopes"] + (["revoked"] if obj.revoked else [])
        return self.readonly_fields

    def save_model(self, request, obj, form, change):
        if change:
            super(APIKeyModelAdmin, self).save_model(request, obj, form, change)
            return
        created, key = api_key_create(name=obj.name, scopes=form.cleaned_data["scopes"], created_by=request.user)
        if obj.expiry_date:
            created.expiry_date = obj.expiry_date
            created.save(update_fields=["expiry_date"])
        obj.pk = created.pk
        self.message_user(
            request,
            f"The API key for {created.name} is: {key} — copy it now; it is stored hashed and will not be shown again.",
            level=messages.WARNING,
        )


# ---------------------------------------------------------------------------------------
# Outgoing webhooks


def _private_urls_note() -> str:
    if settings.WEBHOOK_ALLOW_PRIVATE_URLS:
        return "WEBHOOK_ALLOW_PRIVATE_URLS is on: loopback and private addresses are accepted (development only)."
    return (
        "Loopback, private, link-local and reserved addresses (127.0.0.1, 10.x, 172.16–31.x, 192.168.x, …) are "
        "refused, also when a host name resolves to one; WEBHOOK_ALLOW_PRIVATE_URLS allows them for development."
    )


class WebhookEndpointForm(forms.ModelForm):
    url = forms.URLField(
        label="URL", max_length=500, assume_scheme="https", widget=forms.URLInput(attrs={"class": "vURLField"})
    )
    events = forms.MultipleChoiceField(
        choices=[(event.value, f"{event.value}: {WEBHOOK_EVENT_DESCRIPTIONS[event]}") for event in WebhookEventType],
        widget=forms.CheckboxSelectMultiple,
    )

    class Meta:
        model = WebhookEndpoint
        widgets = {"name": forms.TextInput(attrs={"class": "vTextField"})}
        fields = ["name", "url", "events", "is_active", "may_receive_personal_data"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["url"].help_text = "Where the events are POSTed, signed. " + _private_urls_note()
        self.fields["url"].validators.append(webhooks.validate_webhook_url)
        if self.instance.disabled_at:
            self.fields["is_active"].help_text = "Tick to enable it again: its waiting messages are then sent."


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    """Superusers and privacy officers decide where events (and maybe personal data) are sent."""

    form = WebhookEndpointForm
    list_display = ["name", "short_url", "event_list", "state_short", "personal_data"]
    list_filter = ["is_active", "may_receive_personal_data"]
    search_fields = ["name", "url"]
    readonly_fields = [
        "signing_secret",
        "state",
        "failing_since",
        "created_at",
        "created_by",
        "messages_link",
        "latest_messages",
    ]

    def get_fieldsets(self, request, obj=None):
        endpoint = [None, {"fields": ["name", "url", "events", "is_active", "may_receive_personal_data"]}]
        if obj is None:
            return [endpoint]
        return [
            endpoint,
            ["Signing", {"fields": [self._secret_field(request)]}],
            [
                "Deliveries",
                {"fields": ["state", "failing_since", "created_at", "created_by", "messages_link", "latest_messages"]},
            ],
        ]

    @admin.display(description="URL", ordering="url")
    def short_url(self, obj: WebhookEndpoint) -> str:
        if len(obj.url) <= 40:
            return obj.url
        return format_html('<span title="{}">{}…</span>', obj.url, obj.url[:39])

    @admin.display(description="personal data", boolean=True, ordering="may_receive_personal_data")
    def personal_data(self, obj: WebhookEndpoint) -> bool:
        return obj.may_receive_personal_data

    @admin.display(description="events")
    def event_list(self, obj: WebhookEndpoint) -> str:
        return format_html_join(mark_safe("<br>"), "{}", ((event,) for event in obj.events))

    @admin.display(description="state")
    def state(self, obj: WebhookEndpoint) -> str:
        if obj.disabled_at:
            return format_html(
                '<strong style="color:var(--error-fg)">Disabled {}</strong><br>{}',
                timezone.localtime(obj.disabled_at).strftime("%Y-%m-%d %H:%M"),
                obj.disabled_reason,
            )
        if not obj.is_active:
            return "Inactive"
        if obj.failing_since:
            return format_html(
                '<span style="color:var(--error-fg)">Failing since {}</span>',
                timezone.localtime(obj.failing_since).strftime("%Y-%m-%d %H:%M"),
            )
        return "Active"

    @admin.display(description="state")
    def state_short(self, obj: WebhookEndpoint) -> str:
        if obj.disabled_at:
            return format_html(
                '<strong style="color:var(--error-fg)" title="{}">Disabled {}</strong>',
                obj.disabled_reason,
                timezone.localtime(obj.disabled_at).strftime("%Y-%m-%d %H:%M"),
            )
        return self.state(obj)

    @admin.display(description="latest messages")
    def latest_messages(self, obj: WebhookEndpoint) -> str:
        # Only the latest few: an endpoint's messages run into the thousands.
        latest = obj.messages.order_by("-created_at", "-id")[:10]
        if not latest:
            return "None yet."
        rows = format_html_join(
            "",
            '<tr><td><a href="{}">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>',
            (
                (
                    reverse("admin:api_webhookmessage_change", args=[m.pk]),
                    m.message_id,
                    m.event_type,
                    m.get_status_display(),
                    m.attempts,
                    timezone.localtime(m.created_at).strftime("%Y-%m-%d %H:%M"),
                )
                for m in latest
            ),
        )
        return format_html(
            '<div style="overflow-x:auto"><table><thead><tr><th>webhook-id</th><th>event</th><th>status</th>'
            "<th>attempts</th><th>queued</th></tr></thead><tbody>{}</tbody></table></div>",
            rows,
        )

    @admin.display(description="messages")
    def messages_link(self, obj: WebhookEndpoint) -> str:
        url = reverse("admin:api_webhookmessage_changelist") + f"?endpoint__id__exact={obj.pk}"
        return format_html('<a href="{}">{} messages</a>', url, obj.messages.count())

    @admin.display(description="signing secret")
    def signing_secret(self, obj: WebhookEndpoint) -> str:
        return format_html("<code>{}</code>", obj.secret)

    @admin.display(description="signing secret")
    def signing_secret_hidden(self, obj: WebhookEndpoint) -> str:
        return f"{obj.secret[:10]}… (only superusers and privacy officers see the whole secret)"

    def _secret_field(self, request) -> str:
        return "signing_secret" if request.user.has_perm("api.view_webhook_secret") else "signing_secret_hidden"

    def get_readonly_fields(self, request, obj=None):
        return [self._secret_field(request), *self.readonly_fields[1:]]

    def save_model(self, request, obj, form, change):
        # The form checked the URL as the service does.
        due = webhooks.webhook_endpoint_save(endpoint=obj, user=request.user)
        webhook_messages_enqueue(due)
        if due:
            self.message_user(request, f"{len(due)} waiting message(s) queued to be sent.", messages.SUCCESS)
        if not change:
            self.message_user(
                request,
                f"The signing secret of {obj.name} is {obj.secret} — give it to the receiver to verify signatures "
                "(Standard Webhooks). Superusers and privacy officers can see it again on this page.",
                messages.WARNING,
            )

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("created_by")


@admin.register(WebhookMessage)
class WebhookMessageAdmin(admin.ModelAdmin):
    list_display = ["short_id", "endpoint", "event_type", "status", "attempts", "next_attempt"]
    list_display_links = ["short_id"]
    list_filter = ["status", "event_type", "endpoint"]
    search_fields = ["=message_id", "=customer__public_id"]
    list_select_related = ["endpoint"]
    date_hierarchy = "created_at"
    show_full_result_count = False
    actions = ["send_again"]
    fields = readonly_fields = (
        "message_id",
        "endpoint",
        "event_type",
        "customer_public_id",
        "status",
        "attempts",
        "next_attempt_at",
        "created_at",
        "delivered_at",
        "redacted_at",
        "payload_pretty",
        "attempt_table",
    )

    @admin.display(description="webhook-id", ordering="message_id")
    def short_id(self, obj: WebhookMessage) -> str:
        return format_html('<span title="{}">{}…</span>', obj.message_id, obj.message_id[:14])

    @admin.display(description="next attempt", ordering="next_attempt_at")
    def next_attempt(self, obj: WebhookMessage) -> str:
        if obj.next_attempt_at is None or obj.status != WebhookMessage.Status.PENDING:
            return "—"
        return timezone.localtime(obj.next_attempt_at).strftime("%Y-%m-%d %H:%M")

    @admin.display(description="customer")
    def customer_public_id(self, obj: WebhookMessage) -> str:
        return str(obj.customer.public_id) if obj.customer is not None else "—"

    @admin.display(description="attempts made")
    def attempt_table(self, obj: WebhookMessage) -> str:
        attempts = obj.attempt_log.order_by("attempted_at", "id")
        if not attempts:
            return "None yet."
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
            (
                (
                    timezone.localtime(a.attempted_at).strftime("%Y-%m-%d %H:%M:%S"),
                    a.get_outcome_display(),
                    a.response_status or "—",
                    a.duration_ms,
                    a.error or "—",
                    a.response_excerpt,
                )
                for a in attempts
            ),
        )
        return format_html(
            '<div style="overflow-x:auto"><table><thead><tr><th>time</th><th>outcome</th><th>response code</th>'
            "<th>duration (ms)</th><th>error</th><th>start of the answer (masked)</th></tr></thead>"
            "<tbody>{}</tbody></table></div>",
            rows,
        )

    @admin.display(description="payload")
    def payload_pretty(self, obj: WebhookMessage) -> str:
        return format_html(
            "<pre style='white-space:pre-wrap;overflow-wrap:anywhere'>{}</pre>",
            json.dumps(obj.payload, indent=2, ensure_ascii=False),
        )

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        # Viewable, and "send again" is an action; a message is never edited.
        return False

    def has_send_again_permission(self, request) -> bool:
        return request.user.has_perm("api.change_webhookendpoint")

    @admin.action(description="Send again", permissions=["send_again"])
    def send_again(self, request, queryset) -> None:
        try:
            due = webhooks.webhook_messages_send_again(messages=queryset, user=request.user)
        except webhooks.SendAgainRefused as refused:
            self.message_user(request, " ".join(refused.messages), messages.ERROR)
            return
        webhook_messages_enqueue(due)
        self.message_user(request, f"{len(due)} message(s) queued to be sent again.", messages.SUCCESS)


@admin.register(WebhookAttempt)
class WebhookAttemptAdmin(admin.ModelAdmin):
    """Every delivery attempt, for following up a receiver's trouble."""

    list_display = ["when", "endpoint", "event_type", "outcome", "code", "milliseconds", "short_error"]
    list_display_links = ["when"]
    list_filter = ["outcome", "message__endpoint", "message__event_type"]
    search_fields = ["=message__message_id"]
    list_select_related = ["message__endpoint"]
    date_hierarchy = "attempted_at"
    show_full_result_count = False
    fields = readonly_fields = (
        "message_link",
        "endpoint",
        "event_type",
        "attempted_at",
        "outcome",
        "response_status",
        "duration_ms",
        "error",
        "response_excerpt",
    )

    @admin.display(description="attempted at", ordering="attempted_at")
    def when(self, obj: WebhookAttempt) -> str:
        return timezone.localtime(obj.attempted_at).strftime("%Y-%m-%d %H:%M:%S")

    @admin.display(description="code", ordering="response_status")
    def code(self, obj: WebhookAttempt) -> str:
        return str(obj.response_status or "—")

    @admin.display(description="ms", ordering="duration_ms")
    def milliseconds(self, obj: WebhookAttempt) -> int:
        return obj.duration_ms

    @admin.display(description="endpoint", ordering="message__endpoint__name")
    def endpoint(self, obj: WebhookAttempt) -> str:
        return obj.message.endpoint.name

    @admin.display(description="event")
    def event_type(self, obj: WebhookAttempt) -> str:
        return obj.message.event_type

    @admin.display(description="webhook-id")
    def message_link(self, obj: WebhookAttempt) -> str:
        return format_html(
            '<a href="{}">{}</a>',
            reverse("admin:api_webhookmessage_change", args=[obj.message_id]),
            obj.message.message_id,
        )

    @admin.display(description="error")
    def short_error(self, obj: WebhookAttempt) -> str:
        if len(obj.error) <= 40:
            return obj.error
        return format_html('<span title="{}">{}…</span>', obj.error, obj.error[:39])

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
