from django.apps import AppConfig


class CustomersConfig(AppConfig):
    name = "customers"
    verbose_name = "Customers"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from auditlog.registry import auditlog

        from .models import Customer, ProductRegistration, ThirdParty

        # Field-level audit of staff changes to personal data: who changed which field, old and new.
        auditlog.register(Customer, exclude_fields=["updated_at"])
        auditlog.register(ProductRegistration, mask_fields=["licence_key"])
        auditlog.register(ThirdParty)
