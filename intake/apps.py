from django.apps import AppConfig


class IntakeConfig(AppConfig):
    """Where customers, purchases and consent come in: reseller notifications (and sign-up forms)."""

    name = "intake"
    verbose_name = "Intake"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from customers import registry

        from . import privacy

        registry.register_export_section("reseller_notifications", privacy.export_notifications)
        registry.register_eraser("reseller_notifications", privacy.erase_customer)
        registry.register_retention_step("reseller_notifications", privacy.clear_old_payloads)
        registry.register_export_section("signup_requests", privacy.export_signup_requests)
        registry.register_eraser("signup_requests", privacy.erase_signup_requests)
        registry.register_retention_step("signup_requests", privacy.clear_old_signup_details)
