import copy
from datetime import timedelta

from auditlog.admin import LogEntryAdmin
from auditlog.models import LogEntry as AuditEntry
from auditlog.registry import auditlog
from django import forms
from django.contrib import admin, messages
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import EmptyResultSet, PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db import connections
from django.db.models import Q
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.html import format_html

from common.admin_filters import DropdownFilter
from common.dates import format_moment

from . import admin_parts, services
from .forms import STAFF_FIELDS
from .models import (
    FULL_NAME,
    AccessLog,
    Customer,
    CustomerChange,
    CustomerErasure,
    PrivacyRequest,
    Product,
    ProductRegistration,
    RecipientNotification,
    RetentionRun,
    ThirdParty,
)
from .validators import is_row_id


class EstimatedCountPaginator(Paginator):
    """
    Counting every row of a large table on each changelist page costs a full scan, and
    so does counting a filter that matches most of it. Count at most COUNT_CAP rows, in
    one query; past the cap an unfiltered list shows the planner's estimate of the table
    size, a filtered one "more than COUNT_CAP" (pages beyond it are reached by searching
    or filtering more narrowly).
    """

    COUNT_CAP = 10_000

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        query = getattr(queryset, "query", None)
        if query is None:
            return super().count
        bounded = queryset.order_by().values("pk")[: self.COUNT_CAP + 1]
        try:
            sql, params = bounded.query.sql_with_params()
        except EmptyResultSet:  # a filter that can match nothing (pk__in=[]) is not run at all
            return 0
        table = queryset.model._meta.db_table
        with connections[queryset.db].cursor() as cursor:
            if connections[queryset.db].vendor == "postgresql" and not query.where:
                cursor.execute(
                    f"SELECT CASE WHEN b.n > %s THEN GREATEST(c.reltuples::bigint, b.n) ELSE b.n END "
                    f"FROM (SELECT count(*) AS n FROM ({sql}) AS page) AS b, pg_class AS c "
                    f"WHERE c.oid = %s::regclass",
                    [self.COUNT_CAP, *params, table],
                )
            else:
                cursor.execute(f"SELECT count(*) FROM ({sql}) AS page", params)
            return int(cursor.fetchone()[0])


class ReadOnlyAdmin(admin.ModelAdmin):
    """Records of what happened: nobody adds, edits or deletes them in admin."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class ReadOnlyInline(admin.TabularInline):
    """A record's history shown on its page: read, never edited there."""

    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class RegistrationInline(ReadOnlyInline):
    """
    The customer's registrations, one line each: the registration's own page edits it and
    records refunds (through registration_refund), so this table stays narrow enough for
    the page.
    """

    model = ProductRegistration
    verbose_name_plural = "product registrations"
    fields = ["product", "order_reference", "purchased", "money_back_deadline", "refunded"]
    readonly_fields = fields
    show_change_link = True

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("product")

    @admin.display(description="purchased")
    def purchased(self, obj: ProductRegistration) -> str:
        return format_moment(obj.purchased_at)

    @admin.display(description="money-back deadline")
    def money_back_deadline(self, obj: ProductRegistration) -> str:
        return format_moment(obj.money_back_deadline)

    @admin.display(description="refunded")
    def refunded(self, obj: ProductRegistration) -> str:
        return format_moment(obj.refunded_at)


class CustomerChangeInline(ReadOnlyInline):
    model = CustomerChange
    verbose_name = "correction"
    verbose_name_plural = "corrections (what changed, from what, to what, by whom)"
    fields = ["changed_at", "field", "old_value", "new_value", "changed_by", "staff_user"]
    readonly_fields = fields
    ordering = ["-changed_at"]


@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin):
    list_display = ["email", "full_name", "company", "country", "language", "created_at"]
    list_filter = [("country", DropdownFilter), ("language", DropdownFilter), ("created_at", admin.DateFieldListFilter)]
    search_fields = ["email", "first_name", "last_name", "company"]
    search_help_text = (
        "An exact email address, or the start of an address, first name, last name, full name "
        "(“Fiona Naylor”) or business name."
    )
    show_full_result_count = False
    paginator = EstimatedCountPaginator
    list_per_page = 50
    SEARCH_ID_CAP = 1000
    readonly_fields = ["public_id", "signup_ip", "signup_user_agent", "created_at", "updated_at", "erased_at"]
    fieldsets = [
        (None, {"fields": ["email", "public_id"]}),
        ("Person", {"fields": ["first_name", "last_name", "job_title", "company", "phone"]}),
        (
            "Postal address",
            {"fields": ["address_line1", "address_line2", "city", "region", "postal_code", "country"]},
        ),
        ("Preferences", {"fields": ["language", "currency"]}),
        ("Internal", {"fields": ["notes"]}),
        (
            "Record",
            {"fields": ["signup_ip", "signup_user_agent", "created_at", "updated_at", "erased_at"]},
        ),
    ]
    inlines = [RegistrationInline, CustomerChangeInline]
    change_form_template = "admin/customers/customer/change_form.html"

    @admin.display(description="name", ordering="last_name")
    def full_name(self, obj: Customer) -> str:
        return obj.full_name

    # Parts of the page and the list that apps above this one contribute (admin_parts): read
    # on each request, so no app has to replace this admin to add to it.

    def get_fieldsets(self, request, obj=None):
        fieldsets = list(super().get_fieldsets(request, obj))
        for part in admin_parts.parts():
            for panel in part.panels:
                titles = [title for title, _options in fieldsets]
                at = titles.index(panel.after) + 1 if panel.after in titles else 1
                fieldsets.insert(at, (panel.title, {"fields": [panel.render]}))
        return fieldsets

    def get_readonly_fields(self, request, obj=None):
        panels = [panel.render for part in admin_parts.parts() for panel in part.panels]
        return [*super().get_readonly_fields(request, obj), *panels]

    def get_inlines(self, request, obj):
        return [*super().get_inlines(request, obj), *(i for part in admin_parts.parts() for i in part.inlines)]

    def get_list_filter(self, request):
        extra = [f for part in admin_parts.parts() if part.list_filters for f in part.list_filters(request)]
        return [*super().get_list_filter(request), *extra]

    def get_actions(self, request):
        actions = super().get_actions(request)
        if self.actions is None or "_popup" in request.GET:
            return actions
        for part in admin_parts.parts():
            for action in part.actions:
                func, name, description = self.get_action(action)
                permissions = getattr(func, "allowed_permissions", ())
                if all(getattr(self, f"has_{p}_permission")(request) for p in permissions):
                    actions[name] = (func, name, description)
        return actions

    def get_formset_kwargs(self, request, obj, inline, prefix):
        kwargs = super().get_formset_kwargs(request, obj, inline, prefix)
        if isinstance(inline, ReadOnlyInline) and "data" in kwargs:
            # Nothing is ever saved through these inlines: post them as empty, so saving the
            # customer neither needs their management form nor touches their rows.
            data = kwargs["data"].copy()
            data[f"{prefix}-TOTAL_FORMS"] = data[f"{prefix}-INITIAL_FORMS"] = "0"
            kwargs["data"] = data
        return kwargs

    def _part_links(self, request, customer: Customer | None) -> list[tuple[str, str]]:
        if customer is None:
            return []
        links = [(link.label, link.url(request, customer)) for part in admin_parts.parts() for link in part.links]
        return [(label, url) for label, url in links if url]

    def has_change_permission(self, request, obj=None) -> bool:
        # An erased record stays as the erasure left it.
        if obj is not None and obj.erased_at is not None:
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        # Customers are erased (customer_erase), never deleted: the ledger must keep its rows.
        return False

    def change_view(self, request, object_id, form_url="", extra_context=None):
        customer = Customer.objects.filter(pk=object_id).first() if is_row_id(object_id) else None
        if customer is not None and request.method == "GET" and self.has_view_permission(request, customer):
            services.access_log_record(staff_user=request.user, action=AccessLog.Action.VIEWED, customer=customer)
        extra_context = {
            **(extra_context or {}),
            "can_export_customer": request.user.has_perm("customers.export_customer"),
            "can_erase_customer": request.user.has_perm("customers.erase_customer")
            and customer is not None
            and not customer.is_erased,
            "can_view_access_log": request.user.has_perm("customers.view_accesslog"),
            "can_view_audit_log": request.user.has_perm("auditlog.view_logentry"),
            "part_links": self._part_links(request, customer),
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def get_urls(self):
        contributed = [url for part in admin_parts.parts() if part.urls for url in part.urls(self)]
        return [
            *contributed,
            path(
                "<path:object_id>/erase/",
                self.admin_site.admin_view(self.erase_view),
                name="customers_customer_erase",
            ),
            *super().get_urls(),
        ]

    def erase_view(self, request, object_id):
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
        to_notify = services._recipient_ids(customer)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "object": customer,
            "title": "Erase this customer's personal data",
            "intro": [
                "Erasure cannot be undone. The name, email address, phone, postal address, notes, IP address "
                "and user agent are removed. The consent ledger keeps each decision and its time but loses IP "
                "address, user agent and note; marketing deliveries keep campaign and time; registrations keep "
                "order reference, dates and product but lose the licence key. The address is added to the "
                "suppression list as a hash, so it is never mailed again and an import of it records no consent.",
                "The erasure is recorded under your name.",
            ],
            "facts": [
                ("Customer", str(customer)),
                ("Consent decisions in the ledger", customer.consent_events.count()),
                ("Product registrations", customer.registrations.count()),
                ("Third parties to notify afterwards", len(to_notify)),
            ],
            "form": form,
            "submit_label": "Erase the customer's personal data",
            "dangerous": True,
            "cancel_url": change_url,
        }
        return TemplateResponse(request, "admin/customers/action_form.html", context)

    @staticmethod
    def search_matches(queryset, term: str):
        """
        Customers whose address, first name, last name, full name ("Fiona Naylor") or business
        name starts with the term: prefix searches the indexes serve (customer_*_prefix on
        PostgreSQL), instead of Django's default "contains anywhere" scan of every row.
        """
        if "@" in term and " " not in term:
            exact = queryset.by_email(term)
            return exact if exact.exists() else queryset.filter(email__startswith=term.lower())
        matches = Q(first_name__istartswith=term) | Q(last_name__istartswith=term) | Q(company__istartswith=term)
        if " " in term:
            # "Fiona Naylor", "Fiona Nay": served by customer_full_name_prefix.
            queryset = queryset.alias(full_name=FULL_NAME)
            matches |= Q(full_name__istartswith=term)
        else:
            matches |= Q(email__startswith=term.lower())
        return queryset.filter(matches)

    def get_search_results(self, request, queryset, search_term):
        term = " ".join(search_term.split())
        if not term:
            return queryset, False
        matching = self.search_matches(queryset, term)
        # Newest first, a page at a time: the planner may walk customer_newest_first and test
        # each row, which is quick when many match and reads the whole table when few do (at
        # 1M customers, 200 ms for "Fiona Naylor", seconds for a rarer name). So take the
        # matches through the prefix indexes first, at most SEARCH_ID_CAP of them (12 ms for
        # "Fiona Naylor"), and order only those; past the cap, matches are common and the
        # walk finds a page at once.
        ids = list(matching.order_by().values_list("pk", flat=True)[: self.SEARCH_ID_CAP + 1])
        if len(ids) <= self.SEARCH_ID_CAP:
            return queryset.filter(pk__in=ids), False
        return matching, False

    def save_model(self, request, obj: Customer, form, change: bool) -> None:
        if not change:
            super().save_model(request, obj, form, change)
            return
        # A correction: through the services, which record each field's old and new value.
        stored = Customer.objects.get(pk=obj.pk)
        changed = set(form.changed_data)
        if "email" in changed:
            services.customer_email_change(
                customer=stored,
                new_email=form.cleaned_data["email"],
                changed_by=CustomerChange.ChangedBy.STAFF,
                staff_user=request.user,
            )
        services.customer_update(
            customer=stored,
            data={name: form.cleaned_data[name] for name in STAFF_FIELDS if name in changed},
            changed_by=CustomerChange.ChangedBy.STAFF,
            staff_user=request.user,
        )
        obj.refresh_from_db()


class MoneyBackWindowFilter(admin.SimpleListFilter):
    title = "money-back window"
    parameter_name = "money_back"

    def lookups(self, request, model_admin):
        return [("open", "Within the money-back window"), ("closed", "Past the deadline or refunded")]

    def queryset(self, request, queryset):
        if self.value() == "open":
            return queryset.within_money_back_window()
        if self.value() == "closed":
            return queryset.exclude(pk__in=queryset.within_money_back_window().values("pk"))
        return queryset


class RegistrationAdminForm(forms.ModelForm):
    """Validates; the admin saves the registration and records a refund through registration_refund."""

    staff_user = None

    class Meta:
        model = ProductRegistration
        fields = [
            "customer",
            "product",
            "edition",
            "version",
            "licence_key",
            "reseller",
            "order_reference",
            "purchased_at",
            "refunded_at",
            "refund_override_reason",
        ]
        help_texts = {
            "refund_override_reason": "Only needed to refund after the money-back deadline; "
            "your name is recorded with it.",
        }

    def clean(self):
        cleaned = super().clean()
        refunded_at, purchased_at = cleaned.get("refunded_at"), cleaned.get("purchased_at")
        if refunded_at and purchased_at:
            # The purchase time may be corrected in the same form: judge by the new one.
            registration = copy.copy(self.instance)
            registration.purchased_at = purchased_at
            try:
                services.registration_refund_check(
                    registration=registration,
                    refunded_at=refunded_at,
                    override_by=self.staff_user,
                    override_reason=cleaned.get("refund_override_reason") or "",
                )
            except ValidationError as error:
                self.add_error(None, error)
        return cleaned


@admin.register(ProductRegistration)
class ProductRegistrationAdmin(admin.ModelAdmin):
    list_display = [
        "order_reference",
        "product",
        "customer",
        "reseller",
        "masked_licence_key",
        "purchased_at",
        "money_back_deadline",
        "refunded_at",
    ]
    list_filter = ["product", "reseller", MoneyBackWindowFilter]
    list_select_related = ["product", "customer", "reseller"]
    search_fields = ["=order_reference", "^customer__email"]
    raw_id_fields = ["customer"]
    autocomplete_fields = ["product", "reseller"]
    readonly_fields = ["money_back_deadline", "refund_override_by", "created_at"]
    show_full_result_count = False
    paginator = EstimatedCountPaginator
    fields = [
        "customer",
        "product",
        "edition",
        "version",
        "licence_key",
        "reseller",
        "order_reference",
        "purchased_at",
        "money_back_deadline",
        "refunded_at",
        "refund_override_reason",
        "refund_override_by",
        "created_at",
    ]

    @admin.display(description="licence key")
    def masked_licence_key(self, obj: ProductRegistration) -> str:
        return obj.masked_licence_key

    @admin.display(description="money-back deadline")
    def money_back_deadline(self, obj: ProductRegistration) -> str:
        return format_moment(obj.money_back_deadline)

    def get_form(self, request, obj=None, change=False, **kwargs):
        kwargs["form"] = RegistrationAdminForm
        form = super().get_form(request, obj, change, **kwargs)
        form.staff_user = request.user
        return form

    def get_readonly_fields(self, request, obj=None):
        readonly = list(super().get_readonly_fields(request, obj))
        # A refund is something the reseller paid out: recorded once, not edited. Asked of the
        # stored row: a form that was refused has already set the typed refund on `obj`.
        if obj is not None and ProductRegistration.objects.filter(pk=obj.pk, refunded_at__isnull=False).exists():
            readonly += ["refunded_at", "refund_override_reason"]
        return readonly

    def save_model(self, request, obj: ProductRegistration, form, change: bool) -> None:
        refunded_at = form.cleaned_data.get("refunded_at")
        new_refund = refunded_at is not None and "refunded_at" in form.changed_data
        if "refunded_at" in form.fields:
            # Not yet refunded: only registration_refund records one.
            obj.refunded_at, obj.refund_override_by, obj.refund_override_reason = None, None, ""
        super().save_model(request, obj, form, change)
        if new_refund:
            services.registration_refund(
                registration=obj,
                refunded_at=refunded_at,
                override_by=request.user,
                override_reason=form.cleaned_data.get("refund_override_reason") or "",
            )


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ["name", "code"]
    search_fields = ["name", "code"]


@admin.register(ThirdParty)
class ThirdPartyAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "country", "dpa_reference"]
    list_filter = ["kind", "country"]
    search_fields = ["name"]


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
        self.fields["privacy_request"].queryset = PrivacyRequest.objects.filter(
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


class CustomerSearchMixin:
    search_help_text = "A customer's exact email address or public ID."

    def get_search_fields(self, request):
        return ["customer"]  # searching is done below; a non-empty list shows the box

    def get_search_results(self, request, queryset, search_term):
        if not search_term.strip():
            return queryset, False
        return queryset.filter(customer__in=Customer.objects.by_email_or_public_id(search_term)), False


# ---------------------------------------------------------------------------------------
# Data-subject requests


class PrivacyRequestStatusFilter(admin.SimpleListFilter):
    """Open requests unless asked otherwise: they are the work to do."""

    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return [*PrivacyRequest.Status.choices, ("all", "All")]

    def choices(self, changelist):
        value = self.value() or PrivacyRequest.Status.OPEN
        for lookup, title in self.lookup_choices:
            yield {
                "selected": value == lookup,
                "query_string": changelist.get_query_string({self.parameter_name: lookup}),
                "display": title,
            }

    def queryset(self, request, queryset):
        value = self.value() or PrivacyRequest.Status.OPEN
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
    list_display = [
        "received_at",
        "customer",
        "kind",
        "channel",
        "status",
        "answer_by_display",
        "days_left",
        "handled_by",
    ]
    list_filter = [PrivacyRequestStatusFilter, DeadlineFilter, "kind", "channel"]
    list_select_related = ["customer", "handled_by"]
    raw_id_fields = ["customer"]
    show_full_result_count = False
    change_form_template = "admin/customers/privacyrequest/change_form.html"
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

    @admin.display(description="answer by", ordering="deadline")
    def answer_by_display(self, obj: PrivacyRequest):
        return obj.answer_by

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
        obj.pk = opened.pk
        obj.received_at = opened.received_at

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
                    "can_extend": can_change and is_open and obj.extended_due_at is None,
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
            path("<int:pk>/extend/", wrap(self.extend_view), name="customers_privacyrequest_extend"),
            path("<int:pk>/close/", wrap(self.close_view), name="customers_privacyrequest_close"),
            *super().get_urls(),
        ]

    def _action(self, request, pk: int, *, form_class, title: str, intro: list[str], submit_label: str, act):
        privacy_request = get_object_or_404(PrivacyRequest.objects.select_related("customer"), pk=pk)
        if not self.has_change_permission(request, privacy_request):
            raise PermissionDenied
        change_url = reverse("admin:customers_privacyrequest_change", args=[pk])
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
        return TemplateResponse(request, "admin/customers/action_form.html", context)

    def extend_view(self, request, pk: int):
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
                "there are many. Tell the customer within the first month, with the reason."
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


class NotifiedFilter(admin.SimpleListFilter):
    """Still to notify, unless asked otherwise."""

    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("open", "To notify"), ("done", "Notified"), ("all", "All")]

    def choices(self, changelist):
        value = self.value() or "open"
        for lookup, title in self.lookup_choices:
            yield {
                "selected": value == lookup,
                "query_string": changelist.get_query_string({self.parameter_name: lookup}),
                "display": title,
            }

    def queryset(self, request, queryset):
        value = self.value() or "open"
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
    fields = ["customer", "third_party", "reason", "corrected_fields", "created_at", "notified_at", "notified_by"]
    readonly_fields = fields

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
    fields = ["customer", "erased_at", "erased_by", "privacy_request", "summary"]
    readonly_fields = fields


@admin.register(AccessLog)
class AccessLogAdmin(CustomerSearchMixin, ReadOnlyAdmin):
    list_display = ["at", "staff_user", "action", "customer", "detail"]
    list_filter = ["action", "staff_user", CustomerFilter, ("at", admin.DateFieldListFilter)]
    list_select_related = ["staff_user", "customer"]
    fields = ["at", "staff_user", "action", "customer", "detail"]
    readonly_fields = fields
    show_full_result_count = False


@admin.register(RetentionRun)
class RetentionRunAdmin(ReadOnlyAdmin):
    list_display = ["started_at", "finished_at", "cutoff", "counts"]
    fields = ["started_at", "finished_at", "cutoff", "counts"]
    readonly_fields = fields


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
