import ipaddress

from django.conf import settings


def client_ip(request) -> str | None:
    """
    The client's address. Behind a TLS proxy (BEHIND_HTTPS_PROXY) it is the last address in
    X-Forwarded-For, the one our proxy appended (earlier entries come from the client and can
    be forged); otherwise the socket's. Anything that is not an IP address counts as unknown.
    """
    candidate = request.META.get("REMOTE_ADDR", "")
    if settings.SECURE_PROXY_SSL_HEADER:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        if forwarded.strip():
            candidate = forwarded.split(",")[-1].strip()
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return None
