from datetime import timedelta
from functools import partial

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.helpers import AdminForm
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Q
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from common.dates import format_moment
from customers import admin_parts
from customers.admin import EstimatedCountPaginator, ReadOnlyAdmin, ReadOnlyInline
from customers.models import Customer
from customers.validators import is_row_id
from privacy.models import AccessLog
from privacy.services import access_log_record

from . import services
from .admin_forms import DisclosureAdminForm, RecordConsentForm
from .models import Consent, ConsentEvent, DataCategory, Disclosure, DisclosurePurpose, PolicyVersion, Purpose, Source
from .receipt_signing import signed_receipt_json
from .receipts import RECEIPT_FORMATS, ReceiptRefused, receipt_filename, signed_receipt
from .selectors import (
    CONSENT_GRANTED,
    CONSENT_NEVER_ASKED,
    CONSENT_STATES,
    CONSENT_WITHDRAWN,
    consent_states,
    customers_with_consent_state,
)

# ---------------------------------------------------------------------------------------
# The customer page: current state per purpose, the ledger, disclosures


class ConsentEventInline(ReadOnlyInline):
    model = ConsentEvent
    verbose_name = "consent decision"
    verbose_name_plural = "consent ledger (every decision, latest made first; never edited)"
    # Thirteen columns made the customer's page twice the width of the screen: related facts
    # share a cell, and the event's own page (View) shows each field on its own.
    fields = readonly_fields = ("decided", "purpose", "decision", "how", "policy_version", "wording", "client", "note")
    # In the order the decisions were made: a decision recorded late sits where it belongs.
    ordering = ["-occurred_at", "-recorded_at", "-id"]
    show_change_link = True

    def get_queryset(self, request):
        # The customer too: each row's label names them.
        return super().get_queryset(request).select_related("customer", "purpose", "policy_version", "staff_user")

    @admin.display(description="decided")
    def decided(self, obj: ConsentEvent):
        lines = [format_moment(obj.occurred_at)]
        if obj.recorded_at and abs(obj.recorded_at - obj.occurred_at) > timedelta(minutes=1):
            lines.append(f"recorded {format_moment(obj.recorded_at)}")
        if obj.redacted_at:
            lines.append(f"redacted {format_moment(obj.redacted_at)}")
        return format_html_join(mark_safe("<br>"), "{}", ((line,) for line in lines))

    @admin.display(description="how")
    def how(self, obj: ConsentEvent):
        parts = [obj.get_source_display(), obj.get_method_display() if obj.method else ""]
        if obj.staff_user_id:
            parts.append(f"by {obj.staff_user}")
        return format_html_join(mark_safe("<br>"), "{}", ((part,) for part in parts if part))

    @admin.display(description="IP address and browser")
    def client(self, obj: ConsentEvent):
        if not (obj.ip_address or obj.user_agent):
            return "–"
        return format_html("{}<br><small>{}</small>", obj.ip_address or "–", obj.user_agent or "")

    @admin.display(description="decision")
    def decision(self, obj: ConsentEvent) -> str:
        return obj.decision_label


class DisclosureInline(ReadOnlyInline):
    model = Disclosure
    fk_name = "customer"
    verbose_name_plural = "disclosures to third parties"
    fields = readonly_fields = (
        "disclosed_at",
        "third_party",
        "categories",
        "legal_basis",
        "disclosure_purpose",
        "purpose",
        "consent_event",
        "reference",
    )
    show_change_link = True

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .select_related("third_party", "disclosure_purpose", "consent_event__purpose", "consent_event__customer")
        )

    @admin.display(description="data categories")
    def categories(self, obj: Disclosure) -> str:
        return _category_labels(obj.data_categories)


def _day(moment) -> str:
    local = timezone.localtime(moment)
    return f"{local.day} {local:%B %Y}"


def _add_service_errors(form: forms.Form, error: ValidationError) -> None:
    """A service's refusal, on the field it concerns where the form has one (the date for `occurred_at`)."""
    on_field = {"occurred_at": "given_on"}
    if not hasattr(error, "error_dict"):
        for message in error.messages:
            form.add_error(None, message)
        return
    for name, field_errors in error.message_dict.items():
        target = on_field.get(name, name)
        for message in field_errors:
            form.add_error(target if target in form.fields else None, message)


def _category_labels(codes) -> str:
    labels = dict(DataCategory.choices)
    return ", ".join(labels.get(code, code) for code in codes or [])


def consent_state_filter(purpose: Purpose) -> type[admin.SimpleListFilter]:
    """A "consents to <purpose>" filter; built per request because staff may add purposes."""

    class ConsentStateFilter(admin.SimpleListFilter):
        title = f"consents to {purpose.name}"
        parameter_name = f"consent_{purpose.code}"

        def lookups(self, request, model_admin):
            return [(CONSENT_GRANTED, "Yes"), (CONSENT_WITHDRAWN, "Withdrawn"), (CONSENT_NEVER_ASKED, "Never asked")]

        def queryset(self, request, queryset):
            if self.value() in CONSENT_STATES:
                return customers_with_consent_state(purpose.code, self.value(), customers=queryset)
            return queryset

    return ConsentStateFilter


@admin.display(description="current consent")
def consent_summary(obj: Customer | None):
    if obj is None or obj.pk is None:
        return "None: a new customer has no consent until a decision is recorded."
    rows = format_html_join(
        "",
        "<tr><th>{}</th><td><strong>{}</strong></td><td>{}</td><td>{}</td><td>{}</td></tr>",
        (
            (
                state.purpose.name,
                state.label,
                f"{timezone.localtime(state.since):%Y-%m-%d %H:%M}" if state.event else "–",
                state.event.get_source_display() if state.event else "–",
                f"policy {state.event.policy_version.version}" if state.event and state.event.policy_version else "–",
            )
            for state in consent_states(customer=obj, with_events=True)
        ),
    )
    if obj.erased_at is not None:
        record = format_html("<em>{}</em>", services.CustomerErased(obj.erased_at).messages[0])
    else:
        record = format_html(
            '<a class="button" href="{}">Record consent on the customer\'s behalf</a>',
            reverse("admin:customers_customer_record_consent", args=[obj.pk]),
        )
    return format_html(
        '<table class="consent-summary"><thead><tr><th>Purpose</th><th>State</th><th>Since</th>'
        "<th>Source</th><th>Policy</th></tr></thead><tbody>{}</tbody></table>"
        "<p>{}</p>",
        rows,
        record,
    )


def _customer_or_404(object_id) -> Customer:
    if not is_row_id(object_id):
        raise Http404("No such customer.")
    return get_object_or_404(Customer, pk=object_id)


def record_consent_view(customer_admin: admin.ModelAdmin, request, object_id):
    customer = _customer_or_404(object_id)
    if not (
        customer_admin.has_view_permission(request, customer) and request.user.has_perm("consents.add_consentevent")
    ):
        raise PermissionDenied
    form = RecordConsentForm(request.POST or None, customer=customer)
    if request.method == "POST" and form.is_valid():
        purpose, granted = form.cleaned_data["purpose"], form.cleaned_data["decision"]
        try:
            outcome = services.consent_record(
                customer=customer,
                purpose=purpose,
                granted=granted,
                source=Source.STAFF,
                staff_user=request.user,
                method=form.cleaned_data["method"],
                occurred_at=form.occurred_at(),
                note=form.cleaned_data["note"],
                language=form.cleaned_data["language"],
            )
        except ValidationError as error:
            _add_service_errors(form, error)
        else:
            _tell_outcome(customer_admin, request, customer, purpose, granted, outcome)
            return HttpResponseRedirect(reverse("admin:customers_customer_change", args=[customer.pk]))
    context = {
        **customer_admin.admin_site.each_context(request),
        "title": "Record consent on the customer's behalf",
        "subtitle": str(customer),
        "customer": customer,
        "form": form,
        "adminform": AdminForm(form, form.fieldsets, {}),  # type: ignore[arg-type]  # any form will do; the stubs ask for a ModelForm
        "media": customer_admin.media + form.media,
        "opts": customer_admin.model._meta,
        "states": consent_states(customer=customer, with_events=True),
        # Said before staff fill in the form; a POST gets the same refusal from the service.
        "erased_message": services.CustomerErased(customer.erased_at).messages[0] if customer.erased_at else "",
    }
    return TemplateResponse(request, "admin/consents/record_consent.html", context)


def _tell_outcome(
    customer_admin: admin.ModelAdmin, request, customer, purpose, granted: bool, outcome: services.ConsentOutcome
) -> None:
    decision = "granted" if granted else "withdrawn"
    if outcome.event is None:
        customer_admin.message_user(
            request,
            f"{purpose.name} was already {decision} for {customer}: nothing new was recorded.",
            messages.WARNING,
        )
    elif outcome.is_history:
        current = outcome.current
        assert current is not None  # history: a later decision is in force
        state = "granted" if current.granted else "withdrawn"
        customer_admin.message_user(
            request,
            f"Recorded as history: {purpose.name} {decision} on {_day(outcome.event.occurred_at)} for {customer}. "
            f"The customer decided again after that, so the current state stays "
            f"“{state} since {_day(current.since)}”.",
            messages.WARNING,
        )
    else:
        customer_admin.message_user(
            request, f"Recorded: {purpose.name} {decision} for {customer} on {_day(outcome.event.occurred_at)}."
        )


def consent_receipt_view(customer_admin: admin.ModelAdmin, request, object_id):
    # A receipt holds the customer's details and every decision's proof: an export, taken by
    # those who may take exports, and recorded as one. ?format=kantara (default) or iso27560.
    customer = _customer_or_404(object_id)
    if not request.user.has_perm("customers.export_customer"):
        raise PermissionDenied
    receipt_format = request.GET.get("format", "kantara")
    if receipt_format not in RECEIPT_FORMATS:
        customer_admin.message_user(
            request, f"Unknown receipt format {receipt_format!r}: use kantara or iso27560.", messages.ERROR
        )
        return HttpResponseRedirect(reverse("admin:customers_customer_change", args=[customer.pk]))
    try:
        signed = signed_receipt(customer=customer, receipt_format=receipt_format)
    except ReceiptRefused as refusal:
        customer_admin.message_user(request, str(refusal), messages.ERROR)
        return HttpResponseRedirect(reverse("admin:customers_customer_change", args=[customer.pk]))
    access_log_record(
        staff_user=request.user,
        action=AccessLog.Action.RECEIPT_DOWNLOADED,
        customer=customer,
        detail=f"format {receipt_format}",
    )
    response = HttpResponse(signed_receipt_json(signed), content_type="application/json; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{receipt_filename(customer, receipt_format)}"'
    return response


def _customer_urls(customer_admin: admin.ModelAdmin) -> list:
    wrap = customer_admin.admin_site.admin_view
    return [
        path(
            "<path:object_id>/record-consent/",
            wrap(partial(record_consent_view, customer_admin)),
            name="customers_customer_record_consent",
        ),
        path(
            "<path:object_id>/consent-receipt/",
            wrap(partial(consent_receipt_view, customer_admin)),
            name="customers_customer_consent_receipt",
        ),
    ]


def _receipt_url(receipt_format: str):
    def url(request, customer: Customer) -> str | None:
        # An erased customer has no receipt: no button that could only say so.
        if not request.user.has_perm("customers.export_customer") or customer.erased_at is not None:
            return None
        base = reverse("admin:customers_customer_consent_receipt", args=[customer.pk])
        return f"{base}?format={receipt_format}"

    return url


# The customer's page: current consent under the address, the ledger and the disclosures
# below the customer's own records, a filter per purpose on the list, the consent receipt.
admin_parts.register(
    admin_parts.CustomerAdminPart(
        app="consents",
        panels=[admin_parts.Panel(title="Consent", render=consent_summary)],
        inlines=[ConsentEventInline, DisclosureInline],
        links=[
            # Short labels: the buttons above the customer's page must fit on one row at 1366 px.
            admin_parts.Link(label="Kantara receipt", url=_receipt_url("kantara")),
            admin_parts.Link(label="ISO 27560 record", url=_receipt_url("iso27560")),
        ],
        list_filters=lambda request: [consent_state_filter(p) for p in Purpose.objects.all()],
        urls=_customer_urls,
    )
)

# ---------------------------------------------------------------------------------------
# The ledger: read-only, for everyone


@admin.register(ConsentEvent)
class ConsentEventAdmin(ReadOnlyAdmin):
    list_display = [
        "occurred_at",
        "customer_email",
        "purpose",
        "decision",
        "source",
        "method",
        "policy_version",
        "language",
        "staff_user",
        "recorded_at",
    ]
    list_filter = ["purpose", "source", "granted", ("occurred_at", admin.DateFieldListFilter), "method"]
    list_select_related = ["customer", "purpose", "policy_version", "staff_user"]
    search_fields = ["customer__email"]
    search_help_text = "A customer's email address, or its start."
    show_full_result_count = False
    paginator = EstimatedCountPaginator
    date_hierarchy = None
    # The whole ledger lists what was recorded last first (index consent_event_recent), so a
    # back-dated entry shows where staff look for what was just recorded; one customer's
    # history (their page, receipt, export) is in the order the decisions were made.
    ordering = ["-recorded_at", "-id"]
    fields = readonly_fields = (
        "customer",
        "purpose",
        "granted",
        "occurred_at",
        "recorded_at",
        "source",
        "method",
        "policy_version",
        "language",
        "wording",
        "ip_address",
        "user_agent",
        "staff_user",
        "note",
        "reference",
        "redacted_at",
    )

    @admin.display(description="customer", ordering="customer__email")
    def customer_email(self, obj: ConsentEvent) -> str:
        return obj.customer.email

    @admin.display(description="decision", ordering="granted")
    def decision(self, obj: ConsentEvent) -> str:
        return obj.decision_label

    def get_search_results(self, request, queryset, search_term):
        if _is_autocomplete_for(request, "disclosure", "consent_event"):
            # Choosing the consent a disclosure rests on: only consents in force can be it.
            in_force = Consent.objects.filter(granted=True).values("event_id")
            queryset = queryset.filter(granted=True, pk__in=in_force).select_related("customer", "purpose")
        # Addresses are stored lower-case: an exact or prefix match the email index serves.
        term = search_term.strip().lower()
        if not term:
            return queryset, False
        return queryset.filter(customer__email__startswith=term), False

    # Decisions are recorded through the customer's "Record consent" page or by the
    # customer; nobody changes or deletes them (ReadOnlyAdmin).


# ---------------------------------------------------------------------------------------
# Disclosures, purposes, policy versions


def _is_autocomplete_for(request, model_name: str, field_name: str) -> bool:
    """Whether this search comes from the admin's autocomplete widget of that form field."""
    return (
        request.resolver_match is not None
        and request.resolver_match.url_name == "autocomplete"
        and request.GET.get("app_label") == "consents"
        and request.GET.get("model_name") == model_name
        and request.GET.get("field_name") == field_name
    )


@admin.register(Disclosure)
class DisclosureAdmin(admin.ModelAdmin):
    form = DisclosureAdminForm
    list_display = [
        "disclosed_at",
        "customer",
        "third_party",
        "legal_basis",
        "categories",
        "disclosure_purpose",
        "purpose",
        "recorded_by",
    ]
    list_filter = ["legal_basis", "disclosure_purpose", "third_party", ("disclosed_at", admin.DateFieldListFilter)]
    list_select_related = ["customer", "third_party", "disclosure_purpose", "recorded_by"]
    search_fields = ["customer__email"]
    search_help_text = "A customer's email address, or its start."
    autocomplete_fields = ["customer", "third_party", "consent_event"]
    fieldsets = [
        ("Whose data, and to whom", {"fields": ["customer", "third_party", "data_categories"]}),
        ("Why", {"fields": ["disclosure_purpose", "purpose", "legal_basis", "consent_event"]}),
        ("When", {"fields": ["disclosed_at", "reference"]}),
    ]
    show_full_result_count = False

    @admin.display(description="data categories")
    def categories(self, obj: Disclosure) -> str:
        return _category_labels(obj.data_categories)

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip().lower()
        if not term:
            return queryset, False
        return queryset.filter(customer__email__startswith=term), False

    def get_changeform_initial_data(self, request):
        initial = super().get_changeform_initial_data(request)
        initial.setdefault("disclosed_at", timezone.now())
        return initial

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change, **kwargs)

        class CheckedForm(form):
            def clean(self):
                cleaned = super().clean()
                customer = cleaned.get("customer")
                if customer is not None and cleaned.get("legal_basis"):
                    try:
                        services.disclosure_check_consent(
                            customer=customer,
                            legal_basis=cleaned["legal_basis"],
                            disclosure_purpose=cleaned.get("disclosure_purpose"),
                            consent_event=cleaned.get("consent_event"),
                            disclosed_at=cleaned.get("disclosed_at"),
                        )
                    except ValidationError as error:
                        self.add_error(None, error)
                return cleaned

        return CheckedForm

    def save_model(self, request, obj: Disclosure, form, change: bool) -> None:
        data = form.cleaned_data
        recorded = services.disclosure_record(
            customer=data["customer"],
            third_party=data["third_party"],
            data_categories=data["data_categories"],
            legal_basis=data["legal_basis"],
            disclosure_purpose=data["disclosure_purpose"],
            purpose=data["purpose"],
            disclosed_at=data["disclosed_at"],
            reference=data.get("reference") or "",
            consent_event=data.get("consent_event"),
            recorded_by=request.user,
        )
        obj.pk = recorded.pk
        obj.recorded_by = recorded.recorded_by

    # A disclosure is a record of something that happened: a mistake is answered by a
    # new record, not an edit.
    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class DisclosurePurposeInline(admin.TabularInline):
    """On a consent purpose's page: the disclosures to third parties that this consent allows."""

    model = DisclosurePurpose
    fk_name = "consent_purpose"
    fields = ["code", "name"]
    extra = 0
    can_delete = False
    verbose_name = "disclosure this consent allows"
    verbose_name_plural = "disclosures to third parties this consent allows (on the basis of consent)"


@admin.register(DisclosurePurpose)
class DisclosurePurposeAdmin(admin.ModelAdmin):
    list_display = ["name", "code", "consent_purpose"]
    list_select_related = ["consent_purpose"]
    fields = ["code", "name", "consent_purpose"]

    def get_readonly_fields(self, request, obj=None):
        return ["code"] if obj is not None else []

    def has_delete_permission(self, request, obj=None) -> bool:
        # Disclosures name their purpose: a purpose in use stays.
        return obj is not None and not obj.disclosures.exists() and super().has_delete_permission(request, obj)


def _translated(*names: str) -> tuple[str, ...]:
    """name -> name_en, name_de, name_fr (django-modeltranslation's columns)."""
    return tuple(f"{name}_{code}" for name in names for code in settings.CUSTOMER_LANGUAGES)


class MissingTranslationFilter(admin.SimpleListFilter):
    """Rows still without a text in a language: customers reading it are shown English."""

    title = "missing a translation in"
    parameter_name = "missing"
    fields: tuple[str, ...] = ()

    def lookups(self, request, model_admin):
        return [(code, name) for code, name in settings.LANGUAGES if code in settings.CUSTOMER_LANGUAGES[1:]]

    def queryset(self, request, queryset):
        code = self.value()
        if code not in settings.CUSTOMER_LANGUAGES:
            return queryset
        missing = Q()
        for field in self.fields:
            missing |= Q(**{f"{field}_{code}__isnull": True}) | Q(**{f"{field}_{code}": ""})
        return queryset.filter(missing)


class PurposeMissingTranslationFilter(MissingTranslationFilter):
    fields = ("name", "wording")


class PolicyMissingTranslationFilter(MissingTranslationFilter):
    fields = ("text",)


class TranslatedFieldsForm(forms.ModelForm):
    """English is required (it is the fallback); the other languages may be added later."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name, field in self.fields.items():
            if name.rsplit("_", 1)[-1] in settings.CUSTOMER_LANGUAGES[1:]:
                field.required = False

    def clean(self):
        cleaned = super().clean()
        # An empty translation is "missing" (NULL), so the fallback and the filter agree.
        for name in self.fields:
            if name.rsplit("_", 1)[-1] in settings.CUSTOMER_LANGUAGES[1:] and cleaned.get(name) == "":
                cleaned[name] = None
        return cleaned


def _missing_languages(obj) -> str:
    names = dict(settings.LANGUAGES)
    return ", ".join(names.get(code, code) for code in obj.missing_languages()) or "none"


@admin.register(Purpose)
class PurposeAdmin(admin.ModelAdmin):
    form = TranslatedFieldsForm
    list_display = ["name", "code", "is_marketing", "display_order", "missing_translations"]
    list_editable = ["display_order"]
    list_filter = [PurposeMissingTranslationFilter]
    fieldsets = [
        (None, {"fields": ["code", "is_marketing", "display_order"]}),
        (
            "Name and wording per language",
            {
                "fields": _translated("name", "wording"),
                "description": "English is required. A customer reading a language without both a name and a "
                "wording there is shown the English ones, told so, and the English wording is recorded.",
            },
        ),
    ]
    inlines = [DisclosurePurposeInline]

    def get_readonly_fields(self, request, obj=None):
        # Codes appear in links, imports and exports: fixed once created.
        return ["code"] if obj is not None else []

    def get_form(self, request, obj=None, change=False, **kwargs):
        help_texts = kwargs.setdefault("help_texts", {})
        for name in _translated("wording"):
            help_texts[name] = (
                "Exactly what customers are shown. A change applies to new decisions only: "
                "every recorded decision keeps the wording, and the language, its customer saw."
            )
        return super().get_form(request, obj, change, **kwargs)

    @admin.display(description="missing translations")
    def missing_translations(self, obj: Purpose) -> str:
        return _missing_languages(obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class PolicyVersionForm(TranslatedFieldsForm):
    class Meta:
        model = PolicyVersion
        fields = ["version", "effective_at", *_translated("text")]

    def clean_effective_at(self):
        effective_at = self.cleaned_data["effective_at"]
        latest = PolicyVersion.objects.exclude(pk=self.instance.pk).order_by("-effective_at").first()
        if latest is not None and effective_at <= latest.effective_at:
            raise forms.ValidationError(
                f"A new version must take effect after the latest one ({latest.version}, "
                f"{timezone.localtime(latest.effective_at):%Y-%m-%d %H:%M})."
            )
        return effective_at


@admin.register(PolicyVersion)
class PolicyVersionAdmin(admin.ModelAdmin):
    form = PolicyVersionForm
    list_display = ["version", "effective_at", "is_current", "missing_translations"]
    list_filter = [PolicyMissingTranslationFilter]

    @admin.display(description="missing translations")
    def missing_translations(self, obj: PolicyVersion) -> str:
        return _missing_languages(obj)

    def get_queryset(self, request):
        return super().get_queryset(request).with_is_current()

    @admin.display(description="current", boolean=True)
    def is_current(self, obj: PolicyVersion) -> bool:
        # Annotated by with_is_current() (None when no version is in force yet); the type checker
        # knows the model's fields, not annotations.
        return bool(vars(obj)["is_current"])

    def _in_force(self, obj) -> bool:
        return obj is not None and obj.effective_at <= timezone.now()

    def get_readonly_fields(self, request, obj=None):
        # A version that has taken effect is what customers were shown: it stays as it was.
        if not self._in_force(obj):
            return []
        # A missing translation may still be added (customers reading it were shown English until
        # then, and their events say so); a text that was in force stays as it was.
        return ["version", "effective_at", *(name for name in _translated("text") if getattr(obj, name, None))]

    def has_delete_permission(self, request, obj=None) -> bool:
        return not self._in_force(obj) and obj is not None and super().has_delete_permission(request, obj)
