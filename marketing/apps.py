from django.apps import AppConfig
from django.db.backends.signals import connection_created


class MarketingConfig(AppConfig):
    name = "marketing"
    verbose_name = "Marketing"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from customers import registry

        from . import exports, sql

        connection_created.connect(sql.register_sqlite_functions, dispatch_uid="marketing-sqlite-functions")
        registry.register_export_section("marketing_emails", exports.emails_sent)
        registry.register_eraser("marketing", exports.erase_customer)
