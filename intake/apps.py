from django.apps import AppConfig


class IntakeConfig(AppConfig):
    """Where customers, purchases and consent come in: reseller notifications (and sign-up forms)."""

    name = "intake"
    verbose_name = "Intake"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from common import health
        from privacy import registry

        from . import health as intake_health
        from . import privacy

        registry.register(privacy.IntakePart())
        health.register("intake", intake_health.unfinished_notifications)
