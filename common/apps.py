from django.apps import AppConfig


class CommonConfig(AppConfig):
    """Small shared pieces the apps use: client address, prepared queries, admin bases, log masking."""

    name = "common"
    verbose_name = "Common"
