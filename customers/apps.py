from django.apps import AppConfig


class CustomersConfig(AppConfig):
    name = "customers"
    verbose_name = "Customers"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from auditlog.registry import auditlog

        from . import email_changes, exports, imports, registry
        from .models import Customer, PrivacyRequest, ProductRegistration, RecipientNotification, ThirdParty

        registry.register_export_section("customer", exports.customer_details)
        registry.register_export_section("registrations", exports.registrations)
        registry.register_export_section("corrections", exports.corrections)
        registry.register_export_section("email_changes", email_changes.email_changes_export)
        registry.register_eraser("email_changes", email_changes.email_changes_erase)
        imports.register_new_address_check("erased", imports.refuse_erased_addresses)

        # Field-level audit of staff changes to personal data: who changed which field, old and new.
        auditlog.register(Customer, exclude_fields=["updated_at"])
        auditlog.register(ProductRegistration, mask_fields=["licence_key"])
        auditlog.register(PrivacyRequest)
        auditlog.register(RecipientNotification)
        auditlog.register(ThirdParty)
