from django.apps import AppConfig
from django.db.backends.signals import connection_created


class MarketingConfig(AppConfig):
    name = "marketing"
    verbose_name = "Marketing"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from anymail.signals import tracking

        from privacy import registry

        from . import feedback, parts, sql

        connection_created.connect(sql.register_sqlite_functions, dispatch_uid="marketing-sqlite-functions")
        # The mail providers' reports (bounces, complaints, unsubscribes) through anymail's webhooks.
        tracking.connect(feedback.tracking_received, dispatch_uid="marketing-provider-feedback")
        registry.register(parts.MarketingPart())
