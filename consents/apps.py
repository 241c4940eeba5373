from django.apps import AppConfig


class ConsentsConfig(AppConfig):
    name = "consents"
    verbose_name = "Consent"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from auditlog.registry import auditlog

        from customers.demo import register_demo_loader
        from customers.imports import register_import_extension
        from privacy import registry

        from . import checks, demo, imports, parts  # noqa: F401 (checks registers itself)
        from .models import Disclosure

        register_import_extension(imports.EXTENSION)
        register_demo_loader("consents", demo.load_demo_consents)
        registry.register(parts.ConsentPart())
        auditlog.register(Disclosure)
