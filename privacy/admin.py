"""Admin of the privacy operations: requests, erasure, Art. 19 notifications, access log, retention, audit trail."""

from datetime import timedelta

from auditlog.admin import LogEntryAdmin
from auditlog.models import LogEntry as AuditEntry
from auditlog.registry import auditlog
from django import forms
from django.contrib import admin, messages
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Q
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from common.admin_filters import DefaultChoiceFilter
from customers import admin_parts
from customers.admin import ReadOnlyAdmin
from customers.models import Customer
from customers.validators import is_row_id

from . import services
from .models import AccessLog, CustomerErasure, PrivacyRequest, RecipientNotification, RetentionRun
from .selectors import customer_recipient_ids


class EraseForm(forms.Form):
    privacy_request = forms.ModelChoiceField(
        queryset=PrivacyRequest.objects.none(),
        required=False,
        label="Erasure request",
        empty_label="None (erasure decided without a request)",
        help_text="The customer's open erasure request, closed as done by the erasure.",
    )
    confirm = forms.BooleanField(
        label="I have checked the request and that nothing must be kept",
        error_messages={"required": "Tick the box to confirm: erasure cannot be undone."},
    )

    def __init__(self, customer: Customer, *args, **kwargs):
        super().__init__(*args, **kwargs)
        field = self.fields["privacy_request"]
        assert isinstance(field, forms.ModelChoiceField)
        field.queryset = PrivacyRequest.objects.filter(
            customer=customer, kind=PrivacyRequest.Kind.ERASURE, status=PrivacyRequest.Status.OPEN
        )


class CustomerFilter(admin.SimpleListFilter):
    """Narrow to one customer (?customer=<id>, as linked from the customer's page)."""

    title = "customer"
    parameter_name = "customer"

    def lookups(self, request, model_admin):
        value = self.value()
        if value and is_row_id(value):
            customer = Customer.objects.filter(pk=value).first()
            if customer is not None:
                return [(value, str(customer))]
        return []

    def has_output(self) -> bool:
        # Django applies only filters that show: without this, an unknown or malformed id
        # (no lookup to show) would be dropped and the list would show every customer's rows.
        return self.value() is not None or super().has_output()

    def queryset(self, request, queryset):
        value = self.value()
        if value:
            return queryset.filter(customer_id=value) if is_row_id(value) else queryset.none()
        return queryset


class CustomerSearchMixin(admin.ModelAdmin):
    """Search a model's rows by their customer: an exact address (any casing) or a public ID."""

    search_help_text = "A customer's exact email address or public ID."

    def get_search_fields(self, request):
        return ["customer"]  # searching is done below; a non-empty list shows the box

    def get_search_results(self, request, queryset, search_term):
        if not search_term.strip():
            return queryset, False
        return queryset.filter(customer__in=Customer.objects.by_email_or_public_id(search_term)), False


# ---------------------------------------------------------------------------------------
# Data-subject requests


class PrivacyRequestStatusFilter(DefaultChoiceFilter):
    """Open requests unless asked otherwise: they are the work to do."""

    title = "status"
    parameter_name = "status"
    default = PrivacyRequest.Status.OPEN

    def lookups(self, request, model_admin):
        return [*PrivacyRequest.Status.choices, ("all", "All")]

    def queryset(self, request, queryset):
        value = self.selected()
        if value == "all":
            return queryset
        return queryset.filter(status=value)


class DeadlineFilter(admin.SimpleListFilter):
    title = "deadline"
    parameter_name = "deadline"

    def lookups(self, request, model_admin):
        return [("overdue", "Overdue"), ("week", "Due within 7 days"), ("later", "Due later")]

    def queryset(self, request, queryset):
        now = timezone.now()
        value = self.value()
        open_requests = queryset.filter(status=PrivacyRequest.Status.OPEN).with_answer_by()
        if value == "overdue":
            return open_requests.filter(deadline__lt=now)
        if value == "week":
            return open_requests.filter(deadline__gte=now, deadline__lt=now + timedelta(days=7))
        if value == "later":
            return open_requests.filter(deadline__gte=now + timedelta(days=7))
        return queryset


class PrivacyRequestAddForm(forms.ModelForm):
    class Meta:
        model = PrivacyRequest
        fields = ["customer", "kind", "channel", "details", "received_at"]
        help_texts = {
            "customer": "Type the start of the customer's email address, last name or company.",
            "received_at": "When the letter, email or call reached us: the one-month deadline runs from then.",
        }

    def clean_received_at(self):
        received_at = self.cleaned_data["received_at"]
        if received_at and received_at > timezone.now() + timedelta(minutes=5):
            raise forms.ValidationError("A request cannot be received in the future.")
        return received_at


class ExtendForm(forms.Form):
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Why the answer needs more time (the customer must be told, with the reason).",
    )


class CloseForm(forms.Form):
    outcome = forms.ChoiceField(
        choices=[("done", "Done: the customer has had the answer"), ("refused", "Refused")],
        widget=forms.RadioSelect,
    )
    reason = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Required for a refusal: the reason the customer is given.",
    )

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("outcome") == "refused" and not (cleaned.get("reason") or "").strip():
            self.add_error("reason", "Say why the request is refused.")
        return cleaned


@admin.register(PrivacyRequest)
class PrivacyRequestAdmin(CustomerSearchMixin, admin.ModelAdmin):
    # The deadline comes first after whose request it is: at 1366 px wide, with the filters
    # beside the list, "answer by" and "days left" stay on screen.
    list_display = [
        "customer_display",
        "kind",
        "answer_by_display",
        "days_left",
        "status",
        "channel",
        "received_on",
        "handled_by",
    ]
    list_filter = [PrivacyRequestStatusFilter, DeadlineFilter, "kind", "channel"]
    list_select_related = ["customer", "handled_by"]
    autocomplete_fields = ["customer"]
    show_full_result_count = False
    change_form_template = "admin/privacy/privacyrequest/change_form.html"
    readonly_fields = [
        "customer",
        "kind",
        "channel",
        "details",
        "received_at",
        "due_at",
        "extended_due_at",
        "extension_reason",
        "days_left",
        "status",
        "refusal_reason",
        "handled_by",
        "closed_at",
    ]

    def get_queryset(self, request):
        # The deadline in force (extended or not) is an annotation: order after adding it.
        return PrivacyRequest.objects.with_answer_by().order_by(*self.get_ordering(request))

    def get_ordering(self, request):
        return ["deadline", "id"]

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = PrivacyRequestAddForm
        return super().get_form(request, obj, change, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return PrivacyRequestAddForm.Meta.fields
        return self.readonly_fields

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else self.readonly_fields

    def get_changeform_initial_data(self, request):
        initial = super().get_changeform_initial_data(request)
        initial.setdefault("received_at", timezone.now())
        return initial

    class Media:
        css = {"all": ["privacy/admin.css"]}

    @admin.display(description="customer", ordering="customer__last_name")
    def customer_display(self, obj: PrivacyRequest):
        customer = obj.customer
        if customer.is_erased or not customer.full_name:
            return str(customer)
        return format_html('{}<span class="address">{}</span>', customer.full_name, customer.email)

    @admin.display(description="answer by", ordering="deadline")
    def answer_by_display(self, obj: PrivacyRequest) -> str:
        return f"{timezone.localtime(obj.answer_by):%Y-%m-%d}"

    @admin.display(description="received", ordering="received_at")
    def received_on(self, obj: PrivacyRequest) -> str:
        return f"{timezone.localtime(obj.received_at):%Y-%m-%d}"

    @admin.display(description="days left")
    def days_left(self, obj: PrivacyRequest):
        if obj.status != PrivacyRequest.Status.OPEN:
            return "–"
        days = (timezone.localtime(obj.answer_by).date() - timezone.localdate()).days
        if obj.is_overdue():
            late = max(-days, 0)
            when = "was due today" if late == 0 else f"by {late} day{'s' if late != 1 else ''}"
            return format_html('<strong class="overdue">Overdue {}</strong>', when)
        return days

    def save_model(self, request, obj: PrivacyRequest, form, change: bool) -> None:
        if change:
            return  # closed, extended or refused only through the buttons (services)
        data = form.cleaned_data
        already_open = PrivacyRequest.objects.filter(
            customer=data["customer"], kind=data["kind"], status=PrivacyRequest.Status.OPEN
        ).first()
        opened = services.privacy_request_open(
            customer=data["customer"],
            kind=data["kind"],
            channel=data["channel"],
            details=data.get("details") or "",
            received_at=data.get("received_at"),
        )
        if already_open is not None:
            messages.warning(
                request,
                f"This customer already has an open {opened.get_kind_display().lower()} request "
                f"(received {opened.received_at:%Y-%m-%d}): it was not added a second time.",
            )
            request.privacy_request_not_added = True
        obj.pk = opened.pk
        obj.received_at = opened.received_at

    def response_add(self, request, obj, post_url_continue=None):
        if getattr(request, "privacy_request_not_added", False):
            # Nothing was added: the warning is the whole story, not "was added successfully".
            return HttpResponseRedirect(reverse("admin:privacy_privacyrequest_change", args=[obj.pk]))
        return super().response_add(request, obj, post_url_continue)

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def change_view(self, request, object_id, form_url="", extra_context=None):
        obj = self.get_object(request, object_id)
        extra_context = {
            **(extra_context or {}),
            "show_save": False,
            "show_save_and_continue": False,
            "show_save_and_add_another": False,
            "show_delete": False,
        }
        if obj is not None:
            can_change = self.has_change_permission(request, obj)
            is_open = obj.status == PrivacyRequest.Status.OPEN
            extra_context.update(
                {
                    "can_extend": can_change and obj.can_still_be_extended(),
                    "extension_closed": is_open
                    and obj.extended_due_at is None
                    and not obj.can_still_be_extended()
                    and f"It can no longer be extended: the first month ended on "
                    f"{timezone.localtime(obj.due_at):%Y-%m-%d}.",
                    "can_close": can_change and is_open,
                    "can_export": obj.kind == PrivacyRequest.Kind.ACCESS
                    and request.user.has_perm("customers.export_customer"),
                    "can_erase": obj.kind == PrivacyRequest.Kind.ERASURE
                    and is_open
                    and not obj.customer.is_erased
                    and request.user.has_perm("customers.erase_customer"),
                }
            )
        return super().change_view(request, object_id, form_url, extra_context)

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("<int:pk>/extend/", wrap(self.extend_view), name="privacy_privacyrequest_extend"),
            path("<int:pk>/close/", wrap(self.close_view), name="privacy_privacyrequest_close"),
            *super().get_urls(),
        ]

    def _action(self, request, pk: int, *, form_class, title: str, intro: list[str], submit_label: str, act):
        privacy_request = get_object_or_404(PrivacyRequest.objects.select_related("customer"), pk=pk)
        if not self.has_change_permission(request, privacy_request):
            raise PermissionDenied
        change_url = reverse("admin:privacy_privacyrequest_change", args=[pk])
        form = form_class(request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            try:
                message = act(privacy_request, form.cleaned_data)
            except ValidationError as error:
                form.add_error(None, error)
            else:
                self.message_user(request, message, messages.SUCCESS)
                return HttpResponseRedirect(change_url)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "object": privacy_request,
            "title": title,
            "intro": intro,
            "facts": [
                ("Customer", str(privacy_request.customer)),
                ("Received", f"{timezone.localtime(privacy_request.received_at):%Y-%m-%d %H:%M}"),
                ("Answer by", f"{timezone.localtime(privacy_request.answer_by):%Y-%m-%d %H:%M}"),
            ],
            "form": form,
            "submit_label": submit_label,
            "cancel_url": change_url,
        }
        return TemplateResponse(request, "admin/privacy/action_form.html", context)

    def extend_view(self, request, pk: int):
        privacy_request = get_object_or_404(PrivacyRequest, pk=pk)
        if (
            privacy_request.status == PrivacyRequest.Status.OPEN
            and privacy_request.extended_due_at is None
            and not privacy_request.can_still_be_extended()
        ):
            self.message_user(
                request,
                f"This request can no longer be extended: the first month ended on "
                f"{timezone.localtime(privacy_request.due_at):%Y-%m-%d}. Answer it now.",
                messages.WARNING,
            )
            return HttpResponseRedirect(reverse("admin:privacy_privacyrequest_change", args=[pk]))

        def act(privacy_request, data):
            extended = services.privacy_request_extend(
                privacy_request=privacy_request, reason=data["reason"], staff_user=request.user
            )
            return f"Extended: the answer is now due by {timezone.localtime(extended.extended_due_at):%Y-%m-%d}."

        return self._action(
            request,
            pk,
            form_class=ExtendForm,
            title="Extend the deadline by two months",
            intro=[
                "A deadline can be extended once, by two further months, where the request is complex or "
                "there are many, and only within the first month: tell the customer before it ends, with "
                "the reason. An overdue request cannot be extended."
            ],
            submit_label="Extend by two months",
            act=act,
        )

    def close_view(self, request, pk: int):
        def act(privacy_request, data):
            refused = data["outcome"] == "refused"
            services.privacy_request_close(
                privacy_request=privacy_request, staff_user=request.user, refused=refused, reason=data["reason"]
            )
            return "The request is closed as refused." if refused else "The request is closed as done."

        return self._action(
            request,
            pk,
            form_class=CloseForm,
            title="Close the request",
            intro=["Close the request once the customer has had the answer, or refuse it with the reason."],
            submit_label="Close the request",
            act=act,
        )


# ---------------------------------------------------------------------------------------
# Art. 19 notifications, erasures, access log, retention runs


class NotifiedFilter(DefaultChoiceFilter):
    """Still to notify, unless asked otherwise."""

    title = "state"
    parameter_name = "state"
    default = "open"

    def lookups(self, request, model_admin):
        return [("open", "To notify"), ("done", "Notified"), ("all", "All")]

    def queryset(self, request, queryset):
        value = self.selected()
        if value == "open":
            return queryset.filter(notified_at__isnull=True)
        if value == "done":
            return queryset.filter(notified_at__isnull=False)
        return queryset


@admin.register(RecipientNotification)
class RecipientNotificationAdmin(CustomerSearchMixin, admin.ModelAdmin):
    list_display = ["created_at", "customer", "third_party", "reason", "corrected_fields", "notified_at", "notified_by"]
    list_filter = [NotifiedFilter, "reason", "third_party", CustomerFilter]
    list_select_related = ["customer", "third_party", "notified_by"]
    actions = ["mark_notified"]
    fields = readonly_fields = (
        "customer",
        "third_party",
        "reason",
        "corrected_fields",
        "created_at",
        "notified_at",
        "notified_by",
    )

    @admin.display(description="corrected fields")
    def corrected_fields(self, obj: RecipientNotification) -> str:
        return ", ".join(obj.fields or []) or "–"

    @admin.action(description="Mark the selected third parties as notified", permissions=["change"])
    def mark_notified(self, request, queryset):
        count = services.recipient_notifications_mark_notified(notifications=queryset, staff_user=request.user)
        self.message_user(request, f"{count} marked as notified, under your name.", messages.SUCCESS)

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(CustomerErasure)
class CustomerErasureAdmin(ReadOnlyAdmin):
    list_display = ["erased_at", "customer", "erased_by", "privacy_request"]
    list_select_related = ["customer", "erased_by", "privacy_request"]
    list_filter = ["erased_by"]
    fields = readonly_fields = ("customer", "erased_at", "erased_by", "privacy_request", "summary")

    def get_urls(self):
        return [
            path(
                "erase/<path:object_id>/",
                self.admin_site.admin_view(self.erase_view),
                name="privacy_customererasure_erase",
            ),
            *super().get_urls(),
        ]

    def erase_view(self, request, object_id):
        """Erase the customer `object_id` (linked from the customer's page and from erasure requests)."""
        if not request.user.has_perm("customers.erase_customer"):
            raise PermissionDenied
        if not is_row_id(object_id):
            raise Http404("No such customer.")
        customer = get_object_or_404(Customer, pk=object_id)
        change_url = reverse("admin:customers_customer_change", args=[customer.pk])
        if customer.is_erased:
            self.message_user(request, f"This customer was already erased on {customer.erased_at:%Y-%m-%d}.")
            return HttpResponseRedirect(change_url)
        data = request.POST if request.method == "POST" else None
        form = EraseForm(customer, data, initial={"privacy_request": request.GET.get("request")})
        if request.method == "POST" and form.is_valid():
            try:
                erasure = services.customer_erase(
                    customer=customer, staff_user=request.user, request=form.cleaned_data["privacy_request"]
                )
            except ValidationError as error:
                form.add_error(None, error)
            else:
                to_notify = erasure.summary.get("third_parties_to_notify", 0)
                self.message_user(
                    request,
                    f"The customer's personal data was erased. {to_notify} third part"
                    f"{'y' if to_notify == 1 else 'ies'} that received it must be told (Art. 19): "
                    "see Third parties to notify.",
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(change_url)
        to_notify = customer_recipient_ids(customer)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "object": customer,
            "title": "Erase this customer's personal data",
            "intro": [
                "Erasure cannot be undone. The name, email address, phone, postal address, notes, IP address "
                "and user agent are removed. The consent ledger keeps each decision and its time but loses IP "
                "address, user agent and note; marketing deliveries keep campaign and time; registrations keep "
                "order reference, dates and product but lose the licence key. Every address the customer ever "
                "had is added to the suppression list as a hash, so none is mailed again and an import of one "
                "records no consent.",
                "The erasure is recorded under your name.",
            ],
            "facts": [
                ("Customer", str(customer)),
                ("Product registrations", customer.registrations.count()),
                ("Third parties to notify afterwards", len(to_notify)),
            ],
            "form": form,
            "submit_label": "Erase the customer's personal data",
            "dangerous": True,
            "cancel_url": change_url,
        }
        return TemplateResponse(request, "admin/privacy/action_form.html", context)


@admin.register(AccessLog)
class AccessLogAdmin(CustomerSearchMixin, ReadOnlyAdmin):
    list_display = ["at", "staff_user", "action", "customer", "detail"]
    list_filter = ["action", "staff_user", CustomerFilter, ("at", admin.DateFieldListFilter)]
    list_select_related = ["staff_user", "customer"]
    fields = readonly_fields = ("at", "staff_user", "action", "customer", "detail")
    show_full_result_count = False


@admin.register(RetentionRun)
class RetentionRunAdmin(ReadOnlyAdmin):
    list_display = ["started_at", "finished_at", "cutoff", "counts"]
    fields = readonly_fields = ("started_at", "finished_at", "cutoff", "counts")


# ---------------------------------------------------------------------------------------
# The field audit log (django-auditlog), findable per customer


def audit_entries_about(customer_id: int) -> Q:
    """
    Audit entries of the customer's record and of every audited record that points at it
    (registrations, requests, notifications, and other apps' records such as disclosures,
    found through auditlog's registry). Reads the records' ids first, one small query per
    model: with the ids written out PostgreSQL finds the entries through the object_id
    index, where a subquery inside the OR would read every entry of each model.
    Records since deleted (a registration) take their entries with them from this view.
    """
    condition = Q(content_type=ContentType.objects.get_for_model(Customer), object_id=customer_id)
    for model in auditlog.get_models():
        for field in model._meta.get_fields():
            if field.many_to_one and field.related_model is Customer:
                ids = list(model._default_manager.filter(**{field.name: customer_id}).values_list("pk", flat=True))
                if ids:
                    condition |= Q(content_type=ContentType.objects.get_for_model(model), object_id__in=ids)
    return condition


class AuditCustomerFilter(CustomerFilter):
    """?customer=<id>, as for the access log: the customer's own entries and those of their records."""

    def queryset(self, request, queryset):
        value = self.value()
        if value:
            return queryset.filter(audit_entries_about(int(value))) if is_row_id(value) else queryset.none()
        return queryset


admin.site.unregister(AuditEntry)


@admin.register(AuditEntry)
class AuditEntryAdmin(LogEntryAdmin):
    """django-auditlog's own list, with a customer filter and a search by address or public ID."""

    list_filter = [*LogEntryAdmin.list_filter, AuditCustomerFilter]
    search_help_text = (
        "A customer's exact email address or public ID (their entries and their records'), "
        "or text in the object's name or the changes."
    )
    show_full_result_count = False

    def get_search_results(self, request, queryset, search_term):
        customer_ids = list(Customer.objects.by_email_or_public_id(search_term).values_list("pk", flat=True)[:2])
        if len(customer_ids) == 1:
            return queryset.filter(audit_entries_about(customer_ids[0])), False
        return super().get_search_results(request, queryset, search_term)


# ---------------------------------------------------------------------------------------
# The customer's page: the data export, the customer's access log and audit trail, erasure


def _export_url(request, customer: Customer) -> str | None:
    if not request.user.has_perm("customers.export_customer"):
        return None
    return reverse("privacy_staff:customer_export", args=[customer.public_id])


def _access_log_url(request, customer: Customer) -> str | None:
    if not request.user.has_perm("privacy.view_accesslog"):
        return None
    return f"{reverse('admin:privacy_accesslog_changelist')}?customer={customer.pk}"


def _audit_log_url(request, customer: Customer) -> str | None:
    if not request.user.has_perm("auditlog.view_logentry"):
        return None
    return f"{reverse('admin:auditlog_logentry_changelist')}?customer={customer.pk}"


def _erase_url(request, customer: Customer) -> str | None:
    if customer.is_erased or not request.user.has_perm("customers.erase_customer"):
        return None
    return reverse("admin:privacy_customererasure_erase", args=[customer.pk])


admin_parts.register(
    admin_parts.CustomerAdminPart(
        app="privacy",
        links=[
            admin_parts.Link(label="Download data export (JSON)", url=_export_url),
            admin_parts.Link(label="Access log", url=_access_log_url),
            admin_parts.Link(label="Audit log", url=_audit_log_url),
            admin_parts.Link(label="Erase…", url=_erase_url, dangerous=True),
        ],
    )
)
