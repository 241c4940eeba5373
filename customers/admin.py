from datetime import timedelta

from django import forms
from django.conf import settings
from django.contrib import admin
from django.core.paginator import Paginator
from django.db import connections
from django.db.models.functions import Lower
from django.utils.functional import cached_property

from . import services
from .forms import DETAIL_FIELDS
from .models import (
    Customer,
    CustomerChange,
    Product,
    ProductRegistration,
    ThirdParty,
)
from .signals import customer_viewed
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
        sql, params = bounded.query.sql_with_params()
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


class RegistrationInline(admin.TabularInline):
    model = ProductRegistration
    extra = 0
    fields = [
        "product",
        "edition",
        "version",
        "licence_key",
        "reseller",
        "order_reference",
        "purchased_at",
        "money_back_deadline",
        "refunded_at",
    ]
    readonly_fields = ["money_back_deadline", "refunded_at"]
    autocomplete_fields = ["product", "reseller"]
    show_change_link = True

    @admin.display(description="money-back deadline")
    def money_back_deadline(self, obj: ProductRegistration):
        return obj.money_back_deadline or "–"


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
    list_filter = ["country", "language", ("created_at", admin.DateFieldListFilter)]
    search_fields = ["email", "last_name", "company"]
    search_help_text = "An exact email address, or the start of an address, last name or company."
    show_full_result_count = False
    paginator = EstimatedCountPaginator
    list_per_page = 50
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
            "can_export_customer": request.user.has_perm("customers.export_customer"),
            "can_erase_customer": request.user.has_perm("customers.erase_customer")
            and customer is not None
            and not customer.is_erased,
            "can_view_access_log": request.user.has_perm("privacy.view_accesslog"),
            "can_view_audit_log": request.user.has_perm("auditlog.view_logentry"),
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def get_search_results(self, request, queryset, search_term):
        # Prefix searches that the indexes serve, instead of Django's default
        # "contains anywhere" scan of every row.
        term = search_term.strip()
        if not term:
            return queryset, False
        if "@" in term and " " not in term:
            exact = queryset.alias(email_lower=Lower("email")).filter(email_lower=term.lower())
            if exact.exists():
                return exact, False
            return queryset.filter(email__startswith=term.lower()), False
        return (
            queryset.filter(last_name__istartswith=term)
            | queryset.filter(company__istartswith=term)
            | queryset.filter(email__startswith=term.lower())
        ), False

    def save_model(self, request, obj: Customer, form, change: bool) -> None:
        old_values = {}
        if change:
            before = Customer.objects.get(pk=obj.pk)
            old_values = {name: getattr(before, name) for name in [*DETAIL_FIELDS, "email", "notes"]}
        super().save_model(request, obj, form, change)
        if change:
            services.record_staff_changes(customer=obj, old_values=old_values, staff_user=request.user)


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
        if refunded_at and purchased_at and refunded_at > purchased_at + timedelta(days=settings.MONEY_BACK_DAYS):
            if (cleaned.get("refund_override_reason") or "").strip():
                # A late refund is allowed as a recorded override by this staff member.
                self.instance.refund_override_by = self.staff_user
            else:
                self.add_error(
                    "refund_override_reason",
                    "The money-back deadline has passed: give the reason for refunding anyway "
                    "(your name is recorded with it).",
                )
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
    def money_back_deadline(self, obj: ProductRegistration):
        return obj.money_back_deadline or "–"

    def get_form(self, request, obj=None, change=False, **kwargs):
        kwargs["form"] = RegistrationAdminForm
        form = super().get_form(request, obj, change, **kwargs)
        form.staff_user = request.user
        return form


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ["name", "code"]
    search_fields = ["name", "code"]


@admin.register(ThirdParty)
class ThirdPartyAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "country", "dpa_reference"]
    list_filter = ["kind", "country"]
    search_fields = ["name"]
