from django.apps import AppConfig
from django.db.backends.signals import connection_created


class MarketingConfig(AppConfig):
    name = "marketing"
    verbose_name = "Marketing"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from privacy import registry

        from . import parts, sql

        connection_created.connect(sql.register_sqlite_functions, dispatch_uid="marketing-sqlite-functions")
        registry.register(parts.MarketingPart())
