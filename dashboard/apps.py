from django.apps import AppConfig


class DashboardConfig(AppConfig):
    name = "dashboard"
    verbose_name = "Dashboard"

    def ready(self) -> None:
        from privacy import registry

        from . import admin, parts, tasks  # noqa: F401 (the customer list's bulk actions; the beat heartbeat's signal)

        registry.register(parts.DashboardPart())
