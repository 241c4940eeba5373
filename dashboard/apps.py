from django.apps import AppConfig


class DashboardConfig(AppConfig):
    name = "dashboard"
    verbose_name = "Dashboard"

    def ready(self) -> None:
        from . import admin, tasks  # noqa: F401 (the customer list's bulk actions; the beat heartbeat's signal)
