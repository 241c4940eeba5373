from django.apps import AppConfig


class PrivacyConfig(AppConfig):
    name = "privacy"
    verbose_name = "Privacy"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from auditlog.registry import auditlog

        from customers.signals import customer_corrected, customer_viewed

        from . import parts, receivers, registry
        from .models import PrivacyRequest, RecipientNotification

        # Registered before the apps above (INSTALLED_APPS order), which erase first.
        registry.register(parts.CustomerRecordPart())
        registry.register(parts.PrivacyRequestPart())
        customer_corrected.connect(receivers.notify_recipients_of_correction, dispatch_uid="privacy-art19-correction")
        customer_viewed.connect(receivers.log_customer_viewed, dispatch_uid="privacy-access-log-viewed")
        auditlog.register(PrivacyRequest)
        auditlog.register(RecipientNotification)
