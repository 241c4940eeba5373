from django.apps import AppConfig


class ConsentsConfig(AppConfig):
    name = "consents"
    verbose_name = "Consent"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from auditlog.registry import auditlog

        from customers import registry
        from customers.imports import register_import_extension

        from . import demo, exports, imports, privacy
        from .models import Disclosure

        register_import_extension(imports.EXTENSION)
        registry.register_demo_loader("consents", demo.load_demo_consents)
        registry.register_export_section("consents", exports.current_consents)
        registry.register_export_section("consent_history", exports.consent_history)
        registry.register_export_section("disclosures", exports.disclosures)
        registry.register_eraser("consents", privacy.erase_customer)
        registry.register_retention_step("consent_events", privacy.clear_old_request_details)
        registry.register_recipients("disclosures", privacy.recipients)
        auditlog.register(Disclosure)
