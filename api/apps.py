from django.apps import AppConfig


class ApiConfig(AppConfig):
    """The REST API (OpenAPI), for the vendor's shop, support desk and CRM."""

    name = "api"
    verbose_name = "API"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from privacy import registry

        from . import parts, receivers, schema  # noqa: F401 (schema registers its extension, receivers connect)

        registry.register(parts.ApiPart())
