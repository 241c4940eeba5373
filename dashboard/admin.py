"""
The customer list's bulk actions (export the selected customers, record one consent decision
for them, file privacy requests for them), contributed to the customer admin as this app's
part; and the log of imports run from the admin.
"""

from __future__ import annotations

import json

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.http import HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone

from consents.models import Source
from consents.services import RequestMeta, consent_record
from customers import admin_parts
from customers.models import Customer
from privacy.exports import export_document
from privacy.models import AccessLog
from privacy.services import access_log_record, privacy_request_open

from .forms import ConsentDecisionForm, PrivacyRequestsForm
from .models import ImportJob

# One bulk action touches at most this many customers: each is a transaction of its own
# (a consent event, a request) or a full data export, so "select all" over a million
# customers is refused rather than left running in a web request.
BULK_MAX = 1000
BULK_EXPORT_FORMAT = "consentdesk.customer-export-list/1"


def _too_many(modeladmin, request, queryset) -> bool:
    count = queryset.count()
    if count > BULK_MAX:
        modeladmin.message_user(
            request,
            f"{count} customers are selected; a bulk action takes at most {BULK_MAX}. Narrow the list "
            "(search or filters) and try again. Nothing was done.",
            messages.ERROR,
        )
        return True
    return False


def _intermediate(request, queryset, *, title: str, form, action: str, button: str) -> TemplateResponse:
    return TemplateResponse(
        request,
        "admin/dashboard/bulk_action.html",
        {
            **admin.site.each_context(request),
            "title": title,
            "form": form,
            "action": action,
            "button": button,
            "count": queryset.count(),
            "selected": queryset.values_list("pk", flat=True),
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "opts": Customer._meta,
        },
    )


@admin.action(description="Export the selected customers' data (JSON)")
def export_selected(modeladmin, request, queryset):
    if _too_many(modeladmin, request, queryset):
        return None
    customers = list(queryset.order_by("pk"))
    documents = []
    for customer in customers:
        documents.append(export_document(customer))
        access_log_record(
            staff_user=request.user,
            action=AccessLog.Action.EXPORTED,
            customer=customer,
            detail=f"bulk export of {len(customers)} selected customers",
        )
    body = json.dumps(
        {"format": BULK_EXPORT_FORMAT, "generated_at": timezone.now().isoformat(), "customers": documents},
        cls=DjangoJSONEncoder,
        indent=2,
        ensure_ascii=False,
    )
    response = HttpResponse(body, content_type="application/json; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="customers-{timezone.now():%Y%m%d-%H%M}.json"'
    response["Cache-Control"] = "no-store"
    return response


export_selected.required_permission = "customers.export_customer"  # type: ignore[attr-defined]  # read by CustomerAdmin.get_actions


@admin.action(description="Record a consent decision for the selected customers…")
def record_consent(modeladmin, request, queryset):
    if _too_many(modeladmin, request, queryset):
        return None
    form = ConsentDecisionForm(request.POST if "apply" in request.POST else None)
    if "apply" not in request.POST or not form.is_valid():
        return _intermediate(
            request,
            queryset,
            title="Record a consent decision",
            form=form,
            action="record_consent",
            button="Record for each customer",
        )
    purpose = form.cleaned_data["purpose"]
    granted = form.cleaned_data["decision"] == "granted"
    recorded = unchanged = refused = 0
    problems: list[str] = []
    meta = RequestMeta.from_request(request)
    for customer in queryset.order_by("pk"):
        try:
            outcome = consent_record(
                customer=customer,
                purpose=purpose,
                granted=granted,
                source=Source.STAFF,
                staff_user=request.user,
                note=form.cleaned_data["note"],
                method=form.cleaned_data["method"],
                request_meta=meta,
            )
        except ValidationError as error:
            refused += 1
            if len(problems) < 5:
                problems.append(f"customer {str(customer.public_id)[:8]}: {' '.join(error.messages)}")
            continue
        if outcome.event is None:
            unchanged += 1
        else:
            recorded += 1
    decision = "granted" if granted else "withdrawn"
    modeladmin.message_user(
        request,
        f"{purpose.name} {decision}: recorded for {recorded} customer(s), {unchanged} already had it"
        + (f", {refused} refused ({'; '.join(problems)})" if refused else "")
        + ".",
        messages.WARNING if refused else messages.SUCCESS,
    )
    return None


record_consent.required_permission = "consents.add_consentevent"  # type: ignore[attr-defined]  # read by CustomerAdmin.get_actions


@admin.action(description="File a privacy request for the selected customers…")
def file_privacy_requests(modeladmin, request, queryset):
    if _too_many(modeladmin, request, queryset):
        return None
    form = PrivacyRequestsForm(request.POST if "apply" in request.POST else None)
    if "apply" not in request.POST or not form.is_valid():
        return _intermediate(
            request,
            queryset,
            title="File privacy requests",
            form=form,
            action="file_privacy_requests",
            button="File a request for each customer",
        )
    opened = already = refused = 0
    for customer in queryset.order_by("pk"):
        if customer.is_erased:
            refused += 1
            continue
        before = timezone.now()
        try:
            privacy_request = privacy_request_open(
                customer=customer,
                kind=form.cleaned_data["kind"],
                channel=form.cleaned_data["channel"],
                details=form.cleaned_data["details"],
            )
        except ValidationError:
            refused += 1
            continue
        if privacy_request.received_at < before:
            already += 1
        else:
            opened += 1
    modeladmin.message_user(
        request,
        f"{opened} request(s) filed, {already} customer(s) already had one open of this kind"
        + (f", {refused} not filed (erased customers)" if refused else "")
        + ".",
        messages.SUCCESS,
    )
    return None


file_privacy_requests.required_permission = "privacy.add_privacyrequest"  # type: ignore[attr-defined]  # read by CustomerAdmin.get_actions


admin_parts.register(
    admin_parts.CustomerAdminPart(app="dashboard", actions=[export_selected, record_consent, file_privacy_requests])
)


# The import log's page, all of it read only (a tuple: the admin's stubs accept it for both).
IMPORT_JOB_FIELDS = (
    "file_name",
    "uploaded_by",
    "uploaded_at",
    "confirmed_at",
    "finished_at",
    "status",
    "update",
    "clear_blank",
    "evidence",
    "rows",
    "created",
    "updated",
    "unchanged",
    "message",
    "errors",
)


@admin.register(ImportJob)
class ImportJobAdmin(admin.ModelAdmin):
    """Who imported which file, when, and what it did (the imports themselves run from the import page)."""

    list_display = ["file_name", "uploaded_by", "uploaded_at", "status", "rows", "created", "updated", "unchanged"]
    list_filter = ["status"]
    list_select_related = ["uploaded_by"]
    search_fields = ["file_name"]
    fields = IMPORT_JOB_FIELDS
    readonly_fields = IMPORT_JOB_FIELDS

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
