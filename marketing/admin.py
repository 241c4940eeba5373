from typing import TYPE_CHECKING

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django_countries import countries as countries_list

from common.requests import StaffRequest
from customers.admin import ReadOnlyAdmin
from customers.models import Customer

from . import campaigns, charts, exports, selectors, tasks
from .models import AudienceSegment, Campaign, CampaignAction, Delivery, DeliveryEvent, ExportLog, Suppression
from .rendering import PLACEHOLDERS
from .selectors import segment_audience_sizes
from .suppression import suppression_add

if TYPE_CHECKING:
    from django.contrib.admin.options import _FieldsetSpec

# The message per language (django-modeltranslation's columns): subject_en, text_body_en, ...
VARIANT_FIELDS = [
    f"{name}_{code}" for code in settings.CUSTOMER_LANGUAGES for name in ("subject", "text_body", "html_body")
]

EDITABLE_FIELDS = ["name", *campaigns.CONTENT_FIELDS, "scheduled_at"]

# Campaigns with no deliveries yet: no progress to count.
NOT_STARTED = (Campaign.Status.DRAFT, Campaign.Status.SCHEDULED)


# The change form's buttons that save the draft and then ask for a confirmation.
SCHEDULE_BUTTON = "_schedule"
SEND_NOW_BUTTON = "_send_now"


class CampaignForm(forms.ModelForm):
    # Set per request by CampaignAdmin.get_form: the draft is saved to be scheduled, so the time
    # typed in this form ("Send at") is the one the confirmation shows and the schedule uses.
    scheduling = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Any language may be left out; Campaign.clean insists on the fallback language's.
        for name in VARIANT_FIELDS:
            if name in self.fields:
                self.fields[name].required = False

    def clean(self):
        cleaned_data = super().clean()
        if self.instance.pk is not None:
            # The admin validates and saves in one transaction: the row lock taken here holds
            # until the save, so a campaign scheduled by someone else since the form was opened
            # is refused here, as a form error, and never halfway through the save.
            try:
                campaigns.campaign_lock_draft(campaign=self.instance)
            except ValidationError as refused:
                raise ValidationError(" ".join([*refused.messages, "Your changes below were not saved."])) from None
        if self.scheduling and "scheduled_at" not in self.errors:
            problem = campaigns.schedule_time_problem(cleaned_data.get("scheduled_at"))
            if problem:
                self.add_error("scheduled_at", problem)
        return cleaned_data


class CampaignChangeList(ChangeList):
    def get_results(self, request):
        super().get_results(request)
        # The progress column's counts for the whole page in one query, not one per row.
        started = [c.pk for c in self.result_list if c.status not in NOT_STARTED]
        counts = selectors.campaigns_status_counts(campaign_ids=started)
        cancelled = selectors.campaigns_cancelled_counts(
            campaign_ids=[c.pk for c in self.result_list if c.status == Campaign.Status.CANCELLED]
        )
        rates = selectors.campaigns_rates(campaigns=[c for c in self.result_list if c.status not in NOT_STARTED])
        for campaign in self.result_list:
            campaign.status_counts = counts.get(campaign.pk)
            campaign.cancelled_count = cancelled.get(campaign.pk)
            campaign.report_rates = rates.get(campaign.pk)


class CampaignActionInline(admin.TabularInline):
    model = CampaignAction
    extra = 0
    can_delete = False
    fields = readonly_fields = ("at", "action", "staff_user", "note")

    def has_add_permission(self, request, obj=None) -> bool:
        return False


def _message_fieldsets() -> "_FieldsetSpec":
    """A fieldset per complete language for the subject and bodies: the site language's open, the others collapsed."""
    return [
        (
            f"Message in {name}",
            {"fields": [f"subject_{code}", f"text_body_{code}", f"html_body_{code}"], "classes": ["collapse"]}
            if code != settings.LANGUAGE_CODE
            else {"fields": [f"subject_{code}", f"text_body_{code}", f"html_body_{code}"]},
        )
        for code, name in settings.LANGUAGES
        if code in settings.CUSTOMER_LANGUAGES
    ]


@admin.register(Campaign)
class CampaignAdmin(admin.ModelAdmin):
    list_display = ["name", "purpose", "status", "scheduled_at", "progress", "rates"]
    list_filter = ["status", "purpose"]
    list_select_related = ["purpose"]
    search_fields = ["name", "subject_en"]
    autocomplete_fields = ["filter_product"]
    inlines = [CampaignActionInline]
    form = CampaignForm
    change_form_template = "admin/marketing/campaign/change_form.html"

    class Media:
        # The list's progress bars narrower, so the rates fit beside them.
        css = {"all": ["marketing/campaign-admin.css"]}

    fieldsets = [
        (None, {"fields": ["name", "purpose", "status"]}),
        (
            "Message",
            {
                "fields": ["fallback_language", "from_email", "reply_to"],
                "description": "Write the message in each language you want to send it in; every customer receives "
                "the variant in their preferred language, or the fallback language's. Placeholders: "
                + ", ".join(f"{{{{ {name} }}}} ({label})" for name, label in PLACEHOLDERS.items())
                + '. A fallback: {{ first_name|default:"there" }}. Nothing else is allowed; the footer '
                "(why they receive it, unsubscribe and preference links, postal address) is added to every message, "
                "in the variant's language.",
            },
        ),
        *_message_fieldsets(),
        (
            "Audience",
            {"fields": ["filter_country", "filter_language", "filter_product", "segment", "audience_per_variant"]},
        ),
        ("Sending", {"fields": ["scheduled_at", "created_by", "scheduled_by", "dispatched_at", "finished_at"]}),
    ]

    def get_readonly_fields(self, request, obj=None):
        fixed = ["status", "created_by", "scheduled_by", "dispatched_at", "finished_at", "audience_per_variant"]
        # A form posted for a campaign that is no longer a draft (someone scheduled it since the
        # form was opened) keeps its fields: the refusal is shown beside the text as typed.
        if obj is not None and not obj.is_editable and request.method != "POST":
            return fixed + EDITABLE_FIELDS
        return fixed

    def get_changelist(self, request, **kwargs):
        return CampaignChangeList

    @admin.display(description="audience per language")
    def audience_per_variant(self, obj: Campaign | None) -> str:
        """How many customers would receive each variant if the campaign were dispatched now."""
        if obj is None or obj.pk is None:
            return "Save the draft to see who receives which language."
        names = dict(settings.LANGUAGES)
        counts = selectors.audience_by_variant(obj)
        return "; ".join(f"{names.get(code, code)}: {count}" for code, count in counts.items()) or "nobody"

    @admin.display(description="progress")
    def progress(self, obj: Campaign):
        if obj.status in NOT_STARTED:
            return "–"
        counts = getattr(obj, "status_counts", None)  # set for the changelist page by CampaignChangeList
        if counts is None:
            counts = selectors.campaign_status_counts(obj)
        total = sum(counts.values())
        if obj.status == Campaign.Status.CANCELLED:
            # Not a full bar: what went out, and what the cancellation stopped.
            cancelled = getattr(obj, "cancelled_count", None)
            if cancelled is None:
                cancelled = selectors.campaigns_cancelled_counts(campaign_ids=[obj.pk])[obj.pk]
            return format_html("{} of {} sent, {} cancelled", counts["sent"], total, cancelled)
        done = total - counts["queued"] - counts["sending"]
        return format_html('<progress max="{}" value="{}"></progress> {}/{}', total or 1, done, done, total)

    def _rates(self, obj: Campaign) -> selectors.CampaignRates | None:
        if obj.status in NOT_STARTED:
            return None
        rates = getattr(obj, "report_rates", None)  # set for the changelist page by CampaignChangeList
        return rates if rates is not None else selectors.campaigns_rates(campaigns=[obj])[obj.pk]

    @admin.display(description="sent and rates")
    def rates(self, obj: Campaign):
        """Messages sent, then the bounced, complaint and unsubscribe rates, one a line (the list is narrow)."""
        rates = self._rates(obj)
        if rates is None:
            return "–"
        lines = [(str(rates.sent), "sent")]
        if rates.sent:
            lines += [
                (f"{rates.rate(rates.bounced):.1%}", "bounced"),
                (f"{rates.rate(rates.complained):.1%}", "complained"),
                (f"{rates.rate(rates.unsubscribed):.1%}", "unsubscribed"),
            ]
        return format_html_join("", '<span class="campaign-rate">{}&nbsp;{}</span>', lines)

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        # A class made for this request (modelform_factory): the attribute is this request's alone.
        form.scheduling = request.method == "POST" and SCHEDULE_BUTTON in request.POST
        return form

    def response_change(self, request, obj):
        if SCHEDULE_BUTTON in request.POST:
            return HttpResponseRedirect(reverse("admin:marketing_campaign_schedule", args=[obj.pk]))
        if SEND_NOW_BUTTON in request.POST:
            return HttpResponseRedirect(reverse("admin:marketing_campaign_send_now", args=[obj.pk]))
        return super().response_change(request, obj)

    def save_model(self, request, obj, form, change):
        if change and not form.changed_data:
            return  # nothing changed: nothing to save or record
        # CampaignForm.clean() locked the row and found a draft, so this cannot be refused for
        # the campaign's status: a refusal is a form error, never a message beside "changed".
        campaigns.campaign_save_draft(campaign=obj, user=request.user)

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None and not obj.is_editable:
            context.update({"show_save": False, "show_save_and_continue": False, "show_save_and_add_another": False})
        return super().render_change_form(request, context, add, change, form_url, obj)

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("<int:pk>/action/<str:action>/", wrap(self.action_view), name="marketing_campaign_action"),
            path("<int:pk>/schedule/", wrap(self.schedule_view), name="marketing_campaign_schedule"),
            path("<int:pk>/send-now/", wrap(self.send_now_view), name="marketing_campaign_send_now"),
            path("<int:pk>/resume/", wrap(self.resume_view), name="marketing_campaign_resume"),
            path("<int:pk>/preview/", wrap(self.preview_view), name="marketing_campaign_preview"),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = extra_context or {}
        campaign = self.get_object(request, object_id)
        if campaign is not None:
            counts = selectors.campaign_status_counts(campaign)
            total = sum(counts.values())
            done = total - counts["queued"] - counts["sending"]
            is_cancelled = campaign.status == Campaign.Status.CANCELLED
            cancelled = (
                selectors.campaigns_cancelled_counts(campaign_ids=[campaign.pk])[campaign.pk] if is_cancelled else 0
            )
            report_context = {}
            if campaign.status not in NOT_STARTED:
                interval = request.GET.get("report")
                report = selectors.campaign_report(
                    campaign, interval=interval if interval in selectors.INTERVALS else None
                )
                report_context = {
                    "report": report,
                    "report_figures": charts.report_figures(report),
                    "report_charts": charts.report_charts(report),
                }
            extra_context.update(
                {
                    **report_context,
                    "counts": counts,
                    "total": total,
                    "done": done,
                    "percent": round(100 * done / total) if total else 0,
                    "cancelled_count": cancelled,
                    "skipped_other": counts["skipped"] - cancelled,
                    "audience": selectors.audience_estimate(campaign)
                    if campaign.status in (Campaign.Status.DRAFT, Campaign.Status.SCHEDULED)
                    else None,
                    "frequency_cap": _frequency_cap_text(),
                    "can_change": self.has_change_permission(request, campaign),
                    "can_add": self.has_add_permission(request),
                    "can_unschedule": campaign.dispatched_at is None
                    and campaign.status in (Campaign.Status.SCHEDULED, Campaign.Status.PAUSED),
                    "is_sending": campaign.status == Campaign.Status.SENDING,
                    "paused_itself": campaign.status == Campaign.Status.PAUSED and bool(campaign.pause_reason),
                    "pause_figures": selectors.campaign_feedback_rates(campaign)
                    if campaign.status == Campaign.Status.PAUSED
                    else None,
                    **_pause_limits(),
                    "schedule_button": SCHEDULE_BUTTON,
                    "send_now_button": SEND_NOW_BUTTON,
                    "variant_languages": _variant_choices(campaign),
                }
            )
        return super().change_view(request, object_id, form_url, extra_context)

    def _campaign_to_change(self, request: HttpRequest, pk: int) -> Campaign:
        campaign = get_object_or_404(Campaign.objects.select_related("purpose"), pk=pk)
        if not self.has_change_permission(request, campaign):
            raise PermissionDenied
        return campaign

    def _confirmation(self, request: HttpRequest, campaign: Campaign, template: str, **context) -> HttpResponse:
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": campaign,
            "audience": selectors.audience_estimate(campaign),
            "frequency_cap": _frequency_cap_text(),
            **context,
        }
        return TemplateResponse(request, f"admin/marketing/campaign/{template}", context)

    def schedule_view(self, request: StaffRequest, pk: int) -> HttpResponse:
        """
        "Will send to N customers at T": T is the time saved from the change form. The
        confirmation posts that time back, and it must still be the saved one: if someone changed
        it meanwhile, nothing is scheduled and the page asks again.
        """
        campaign = self._campaign_to_change(request, pk)
        back = HttpResponseRedirect(reverse("admin:marketing_campaign_change", args=[pk]))
        if campaign.status != Campaign.Status.DRAFT:
            self.message_user(
                request,
                f"Only a draft can be scheduled; this campaign is {campaign.get_status_display()}.",
                messages.ERROR,
            )
            return back
        problem = campaigns.schedule_time_problem(campaign.scheduled_at)
        if problem:
            self.message_user(request, f"{problem} (“Send at”, under Sending)", messages.ERROR)
            return back
        assert campaign.scheduled_at is not None  # schedule_time_problem refuses a missing time
        if request.method == "POST":
            if request.POST.get("send_at") != campaign.scheduled_at.isoformat():
                self.message_user(
                    request,
                    "The time to send at changed since this page was shown. Check it and confirm again.",
                    messages.ERROR,
                )
                return HttpResponseRedirect(request.path)
            try:
                campaigns.campaign_schedule(campaign=campaign, user=request.user, at=campaign.scheduled_at)
            except ValidationError as refused:
                self.message_user(request, " ".join(refused.messages), messages.ERROR)
            else:
                self.message_user(
                    request,
                    f"Scheduled for {timezone.localtime(campaign.scheduled_at):%Y-%m-%d %H:%M %Z}. "
                    "Consent is checked again for each customer when it sends.",
                    messages.SUCCESS,
                )
            return back
        return self._confirmation(
            request,
            campaign,
            "confirm_schedule.html",
            title=f"Schedule “{campaign.name}”?",
            send_at=campaign.scheduled_at,
        )

    def send_now_view(self, request: StaffRequest, pk: int) -> HttpResponse:
        campaign = self._campaign_to_change(request, pk)
        back = HttpResponseRedirect(reverse("admin:marketing_campaign_change", args=[pk]))
        if campaign.status != Campaign.Status.DRAFT:
            self.message_user(
                request, f"Only a draft can be sent; this campaign is {campaign.get_status_display()}.", messages.ERROR
            )
            return back
        if request.method == "POST":
            try:
                tasks.work_enqueue(campaigns.campaign_send_now(campaign=campaign, user=request.user))
            except ValidationError as refused:
                self.message_user(request, " ".join(refused.messages), messages.ERROR)
            else:
                self.message_user(request, "Sending has started.", messages.SUCCESS)
            return back
        return self._confirmation(request, campaign, "confirm_send_now.html", title=f"Send “{campaign.name}” now?")

    def resume_view(self, request: StaffRequest, pk: int) -> HttpResponse:
        """
        "Resume, sending the N messages still queued?" with the figures that paused it, if it
        paused itself: whoever confirms is recorded as the one who decided to go on.
        """
        campaign = self._campaign_to_change(request, pk)
        back = HttpResponseRedirect(reverse("admin:marketing_campaign_change", args=[pk]))
        if campaign.status != Campaign.Status.PAUSED:
            self.message_user(
                request,
                f"Only a paused campaign can be resumed; this one is {campaign.get_status_display()}.",
                messages.ERROR,
            )
            return back
        if request.method == "POST":
            try:
                tasks.work_enqueue(campaigns.campaign_resume(campaign=campaign, user=request.user))
            except ValidationError as refused:
                self.message_user(request, " ".join(refused.messages), messages.ERROR)
            else:
                note = "Resumed with the messages still queued. You are recorded as the one who resumed it."
                self.message_user(request, note, messages.SUCCESS)
            return back
        return self._confirmation(
            request,
            campaign,
            "confirm_resume.html",
            title=f"Resume “{campaign.name}”?",
            queued=selectors.campaign_status_counts(campaign)["queued"],
            pause_figures=selectors.campaign_feedback_rates(campaign),
            **_pause_limits(),
        )

    def action_view(self, request: StaffRequest, pk: int, action: str) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        campaign = self._campaign_to_change(request, pk)
        back = reverse("admin:marketing_campaign_change", args=[pk])
        try:
            if action == "unschedule":
                campaigns.campaign_unschedule(campaign=campaign, user=request.user)
                note = "Unscheduled: the campaign is a draft again and can be edited."
            elif action == "pause":
                campaigns.campaign_pause(campaign=campaign, user=request.user)
                note = "Paused: no new messages are claimed. Resume continues with the queued ones."
            elif action == "resume":
                # Resuming is decided on its confirmation page, which shows what paused it.
                return HttpResponseRedirect(reverse("admin:marketing_campaign_resume", args=[pk]))
            elif action == "cancel":
                campaigns.campaign_cancel(campaign=campaign, user=request.user)
                note = "Cancelled: queued messages are skipped."
            elif action == "duplicate":
                if not self.has_add_permission(request):
                    raise PermissionDenied
                copy = campaigns.campaign_duplicate(campaign=campaign, user=request.user)
                self.message_user(request, f"This is a new draft, copied from “{campaign.name}”.", messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:marketing_campaign_change", args=[copy.pk]))
            elif action == "test":
                # Only staff who may see customer records may fill a test with a real customer's data.
                lookup = request.POST.get("customer", "") if request.user.has_perm("customers.view_customer") else ""
                customer = _find_customer(lookup)
                message = campaigns.campaign_send_test(
                    campaign=campaign, user=request.user, customer=customer, language=_chosen_language(request.POST)
                )
                note = f"Test sent to {message.recipient} (no delivery recorded)."
            else:
                raise ValidationError(f"Unknown action “{action}”.")
        except ValidationError as error:
            self.message_user(request, " ".join(error.messages), messages.ERROR)
        else:
            self.message_user(request, note, messages.SUCCESS)
        return HttpResponseRedirect(back)

    def preview_view(self, request: StaffRequest, pk: int) -> HttpResponse:
        campaign = get_object_or_404(Campaign.objects.select_related("purpose"), pk=pk)
        if not self.has_view_permission(request, campaign):
            raise PermissionDenied
        can_view_customers = request.user.has_perm("customers.view_customer")
        # Staff who may not see customer records preview with the sample customer only: a
        # real customer's message would show their name, address and company.
        query = request.GET.get("customer", "").strip() if can_view_customers else ""
        customer = _find_customer(query) if query else None
        error = ""
        preview = None
        if query and customer is None:
            error = "No customer with that email address or public ID."
        if customer is None:
            customer = Customer(
                first_name="Ada", last_name="Lovelace", company="Analytical Engines Ltd", email="ada@example.com"
            )
        try:
            preview = campaigns.campaign_preview(
                campaign=campaign, customer=customer, user=request.user, language=_chosen_language(request.GET)
            )
        except ValidationError as refused:
            error = " ".join(refused.messages)
        except ValueError as refused:
            error = str(refused)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": campaign,
            "title": f"Preview: {campaign.name}",
            "preview": preview,
            "query": query,
            "error": error,
            "customer": customer,
            "can_view_addresses": can_view_customers,
            "variant_languages": _variant_choices(campaign),
            "language": _chosen_language(request.GET) or "",
        }
        return TemplateResponse(request, "admin/marketing/campaign/preview.html", context)


def _frequency_cap_text() -> str:
    """The cap as staff read it ("3 messages per 7 days"), or "" when there is none."""
    cap = settings.MARKETING_MAX_PER_CUSTOMER
    if cap <= 0:
        return ""
    days = settings.MARKETING_CAP_DAYS
    return f"{cap} message{'s' if cap != 1 else ''} per {days} day{'s' if days != 1 else ''}"


def _pause_limits() -> dict[str, str]:
    return {
        "pause_bounce_limit": f"{settings.MARKETING_PAUSE_BOUNCE_RATE:.1%}",
        "pause_complaint_limit": f"{settings.MARKETING_PAUSE_COMPLAINT_RATE:.2%}",
        "pause_min_sample": str(settings.MARKETING_PAUSE_MIN_SAMPLE),
    }


def _variant_choices(campaign: Campaign) -> list[tuple[str, str]]:
    names = dict(settings.LANGUAGES)
    return [(code, names.get(code, code)) for code in campaign.variant_languages()]


def _chosen_language(data) -> str | None:
    """A preview or test in one language (?language=de); None: the customer's own."""
    language = data.get("language", "")
    return language if language in settings.CUSTOMER_LANGUAGES else None


def _find_customer(query: str) -> Customer | None:
    return Customer.objects.not_erased().by_email_or_public_id(query).first()


@admin.register(Delivery)
class DeliveryAdmin(ReadOnlyAdmin):
    list_filter = ["status", "skip_reason", "campaign"]
    list_select_related = ["campaign", "customer"]
    show_full_result_count = False
    detail_fields = [
        "status",
        "skip_reason",
        "attempts",
        "claimed_at",
        "next_attempt_at",
        "sent_at",
        "message_id",
        "last_error",
    ]

    # The ModelAdmin is shared by every request: choose the column per request, keep no state.
    def _recipient_field(self, request) -> str:
        return "recipient" if request.user.has_perm("customers.view_customer") else "recipient_without_address"

    def get_list_display(self, request):
        return ["campaign", self._recipient_field(request), "status", "skip_reason", "attempts", "sent_at"]

    def get_fields(self, request, obj=None):
        return ["campaign", self._recipient_field(request), *self.detail_fields]

    def get_readonly_fields(self, request, obj=None):
        return self.get_fields(request, obj)

    def get_search_fields(self, request):
        # Searching by address would reveal addresses to staff who may not see them.
        if request.user.has_perm("customers.view_customer"):
            return ["campaign__name", "=customer__email"]
        return ["campaign__name"]

    @admin.display(description="recipient")
    def recipient(self, obj: Delivery) -> str:
        return str(obj.customer)

    @admin.display(description="recipient")
    def recipient_without_address(self, obj: Delivery) -> str:
        return f"customer {obj.customer.public_id}"


@admin.register(DeliveryEvent)
class DeliveryEventAdmin(ReadOnlyAdmin):
    """What the mail providers reported (their webhooks write these; nobody edits them)."""

    list_display = ["occurred_at", "provider", "kind", "campaign", "effect"]
    list_filter = ["kind", "provider", "effect", "campaign"]
    list_select_related = ["campaign"]
    show_full_result_count = False
    fields = [
        "occurred_at",
        "received_at",
        "provider",
        "provider_event_id",
        "kind",
        "campaign",
        "delivery",
        "reason",
        "effect",
    ]
    readonly_fields = fields  # type: ignore[assignment]  # plain names: the stubs type fields as groups


class SuppressionForm(forms.ModelForm):
    email = forms.EmailField(help_text="Only a hash of the normalised address is stored.")

    class Meta:
        model = Suppression
        fields = ["email", "reason", "note"]


@admin.register(Suppression)
class SuppressionAdmin(admin.ModelAdmin):
    list_display = ["address_hash", "reason", "created_at", "created_by"]
    list_filter = ["reason"]
    search_fields = ["=address_hash"]
    form = SuppressionForm

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["email", "reason", "note"]
        return ["address_hash", "reason", "note", "created_at", "created_by"]

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else ["address_hash", "reason", "note", "created_at", "created_by"]

    def get_form(self, request, obj=None, **kwargs):
        if obj is not None:
            kwargs["form"] = forms.ModelForm
        return super().get_form(request, obj, **kwargs)

    def get_search_results(self, request, queryset, search_term):
        # Staff search by address: compare hashes, never store or show the address.
        if "@" in search_term:
            from customers.models import email_hashes

            return queryset.filter(address_hash__in=email_hashes(search_term)), False
        return super().get_search_results(request, queryset, search_term)

    def save_model(self, request, obj, form, change):
        if change:
            return
        created = suppression_add(
            email=form.cleaned_data["email"],
            reason=form.cleaned_data["reason"],
            user=request.user,
            note=form.cleaned_data.get("note", ""),
        )
        obj.pk = created.pk

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ExportLog)
class ExportLogAdmin(ReadOnlyAdmin):
    list_display = ["at", "staff_user", "detail"]
    list_filter = [("at", admin.DateFieldListFilter)]
    list_select_related = ["staff_user"]
    fields = readonly_fields = ("at", "staff_user", "detail")
    change_list_template = "admin/marketing/exportlog/change_list.html"

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("download/<str:kind>/", wrap(self.download_view), name="marketing_exportlog_download"),
            *super().get_urls(),
        ]

    def download_view(self, request: StaffRequest, kind: str) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseRedirect(reverse("admin:marketing_exportlog_changelist"))
        if kind == "call_list" and request.user.has_perm("marketing.export_call_list"):
            filename, content = exports.call_list_export(user=request.user)
        elif kind == "internal_analysis" and request.user.has_perm("marketing.export_internal_analysis"):
            filename, content = exports.internal_analysis_export(user=request.user)
        else:
            raise PermissionDenied
        response = HttpResponse(content, content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        response["Cache-Control"] = "no-store"
        return response

    def changelist_view(self, request, extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "can_export_call_list": request.user.has_perm("marketing.export_call_list"),
            "can_export_analysis": request.user.has_perm("marketing.export_internal_analysis"),
        }
        return super().changelist_view(request, extra_context)


class AudienceSegmentForm(forms.ModelForm):
    countries = forms.MultipleChoiceField(
        choices=list(countries_list),
        required=False,
        help_text="Any of these countries (Ctrl or ⌘ to choose several); none chosen: any country.",
    )
    languages = forms.MultipleChoiceField(
        choices=settings.LANGUAGES,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Any of these languages; none chosen: any language.",
    )

    class Meta:
        model = AudienceSegment
        fields = [
            "name",
            "countries",
            "languages",
            "products",
            "registered_from",
            "registered_until",
            "consenting_since",
        ]
        widgets = {"products": forms.CheckboxSelectMultiple}

    class Media:
        # Counts the audience as the form changes (a static file: the CSP allows no inline script).
        js = ["marketing/segment_count.js"]


@admin.register(AudienceSegment)
class AudienceSegmentAdmin(admin.ModelAdmin):
    form = AudienceSegmentForm
    list_display = ["name", "created_by", "created_at"]
    search_fields = ["name"]
    readonly_fields = ["audience"]
    change_form_template = "admin/marketing/audiencesegment/change_form.html"

    def get_fields(self, request, obj=None):
        return [*AudienceSegmentForm.Meta.fields, "audience"]

    @admin.display(description="audience now (per purpose)")
    def audience(self, obj: AudienceSegment | None) -> str:
        if obj is None or obj.pk is None:
            return "Shown as you choose the criteria; saved segments show it here."
        return format_html_join(
            ", ", "{}: {}", ((name, f"{count:,}") for name, count in segment_audience_sizes(obj).items())
        )

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)

    def get_urls(self):
        return [
            path(
                "count/",
                self.admin_site.admin_view(self.count_view),
                name="marketing_audiencesegment_count",
            ),
            *super().get_urls(),
        ]

    def count_view(self, request: HttpRequest) -> HttpResponse:
        """The audience size per marketing purpose for the criteria in the query string (JSON)."""
        if not (self.has_add_permission(request) or self.has_change_permission(request)):
            raise PermissionDenied
        form = AudienceSegmentForm(
            data={"name": "count", **request.GET.dict()}
            | {
                "countries": request.GET.getlist("countries"),
                "languages": request.GET.getlist("languages"),
                "products": request.GET.getlist("products"),
            }
        )
        form.is_valid()
        problems = {name: errors for name, errors in form.errors.items() if name != "name"}
        if problems:
            return JsonResponse({"errors": problems}, status=400)
        segment = AudienceSegment(**{k: v for k, v in form.cleaned_data.items() if k != "products"})
        sizes = segment_audience_sizes(segment, products=list(form.cleaned_data["products"]))
        return JsonResponse({"audience": [{"purpose": name, "customers": count} for name, count in sizes.items()]})
