from django.apps import AppConfig


class IntakeConfig(AppConfig):
    """Where customers, purchases and consent come in: reseller notifications (and sign-up forms)."""

    name = "intake"
    verbose_name = "Intake"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from privacy import registry

        from . import privacy

        registry.register(privacy.IntakePart())
