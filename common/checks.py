"""System checks (`manage.py check`, and at every start) for settings that work but would hurt."""

from __future__ import annotations

from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured

from .dkim import configured_key, domain_of, is_aligned


@checks.register(checks.Tags.compatibility, deploy=False)
def dkim_alignment(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """
    DMARC passes on DKIM only when the signing domain aligns with the From domain: a signature
    by another domain is as good as none to Gmail and Yahoo (bulk-sender rules of 2024).
    """
    if not getattr(settings, "DKIM_DOMAIN", ""):
        return []
    try:
        key = configured_key()
    except ImproperlyConfigured as error:
        return [checks.Error(str(error), hint="See README, Deliverability.", id="common.E001")]
    assert key is not None
    from_domain = domain_of(settings.DEFAULT_FROM_EMAIL)
    if is_aligned(from_domain, key.domain):
        return []
    return [
        checks.Warning(
            f"DKIM_DOMAIN ({key.domain}) does not align with the domain of DEFAULT_FROM_EMAIL "
            f"({from_domain or 'none'}): receivers that apply DMARC will not count the signature.",
            hint="Sign with the From address's domain (or a parent of it), or send from an address under DKIM_DOMAIN.",
            id="common.W001",
        )
    ]
