from django.apps import AppConfig


class PrivacyConfig(AppConfig):
    name = "privacy"
    verbose_name = "Privacy"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from auditlog.registry import auditlog

        from customers.imports import register_new_address_check
        from customers.signals import customer_corrected, customer_viewed, customers_looked_up

        from . import parts, receivers, registry, selectors
        from .models import PrivacyRequest, RecipientNotification

        # Registered before the apps above (INSTALLED_APPS order), which erase first.
        registry.register(parts.CustomerRecordPart())
        registry.register(parts.PrivacyRequestPart())
        # An import never gives an erased customer's address (any they ever had) a new record.
        register_new_address_check("erased", selectors.refuse_erased_addresses)
        customer_corrected.connect(receivers.notify_recipients_of_correction, dispatch_uid="privacy-art19-correction")
        customer_viewed.connect(receivers.log_customer_viewed, dispatch_uid="privacy-access-log-viewed")
        customers_looked_up.connect(receivers.log_customers_looked_up, dispatch_uid="privacy-access-log-looked-up")
        auditlog.register(PrivacyRequest)
        auditlog.register(RecipientNotification)
