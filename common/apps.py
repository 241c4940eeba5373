from django.apps import AppConfig


class CommonConfig(AppConfig):
    """Small shared pieces the apps use: client address, prepared queries, admin bases, log masking."""

    name = "common"
    verbose_name = "Common"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_in

        from . import checks  # noqa: F401 (registers the system checks)
        from .signin import record_sign_in_time

        user_logged_in.connect(record_sign_in_time, dispatch_uid="common.signin.record_sign_in_time")
