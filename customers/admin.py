import copy

from django import forms
from django.contrib import admin
from django.core.exceptions import EmptyResultSet, ValidationError
from django.core.paginator import Paginator
from django.db import connections
from django.db.models import Q, QuerySet
from django.utils.functional import cached_property

from common.admin_filters import DropdownFilter
from common.dates import format_moment

from . import admin_parts, services
from .forms import STAFF_FIELDS
from .models import (
    FULL_NAME,
    Customer,
    CustomerChange,
    Product,
    ProductRegistration,
    ThirdParty,
)
from .signals import customer_viewed, customers_looked_up
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
        if not isinstance(queryset, QuerySet):
            return super().count
        query = queryset.query
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
    fields = readonly_fields = ("product", "order_reference", "purchased", "money_back_deadline", "refunded")
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
    fields = readonly_fields = ("changed_at", "field", "old_value", "new_value", "changed_by", "staff_user")
    ordering = ["-changed_at"]


class LookUpPaginator(Paginator):
    """
    The pages of the admin's autocomplete of a customer field: each page shown to staff is
    announced (customers_looked_up), as opening a customer's page is, so the access log has it.
    """

    def __init__(self, *args, staff_user, field: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.staff_user, self.field = staff_user, field

    def page(self, number):
        page = super().page(number)
        shown = list(page.object_list)  # the page renders these same rows, fetched once
        if shown:
            customers_looked_up.send(sender=Customer, customers=shown, staff_user=self.staff_user, field=self.field)
        return page


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
                # An app's action may also need a permission of its own app ("app.codename").
                required = getattr(func, "required_permission", None)
                if required and not request.user.has_perm(required):
                    continue
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

    def _part_links(self, request, customer: Customer | None) -> list[tuple[str, str, bool]]:
        if customer is None:
            return []
        links = []
        for link in (link for part in admin_parts.parts() for link in part.links):
            url = link.url(request, customer)
            if url:
                label = link.label(request, customer) if callable(link.label) else link.label
                links.append((label, url, link.dangerous))
        return sorted(links, key=lambda link: link[2])

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
            customer_viewed.send(sender=Customer, customer=customer, staff_user=request.user)
        extra_context = {
            **(extra_context or {}),
            "part_links": self._part_links(request, customer),
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def get_urls(self):
        contributed = [url for part in admin_parts.parts() if part.urls for url in part.urls(self)]
        return [
            *contributed,
            *super().get_urls(),
        ]

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

    def get_paginator(self, request, queryset, per_page, orphans=0, allow_empty_first_page=True):
        if request.resolver_match is None or request.resolver_match.url_name != "autocomplete":
            return super().get_paginator(request, queryset, per_page, orphans, allow_empty_first_page)
        field = ".".join(request.GET.get(key, "")[:40] for key in ("app_label", "model_name", "field_name"))
        return LookUpPaginator(
            queryset, per_page, orphans, allow_empty_first_page, staff_user=request.user, field=field
        )

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
