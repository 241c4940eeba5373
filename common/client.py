import functools
import ipaddress

from django.conf import settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# One IPv6 subscriber usually holds a whole /64 (2^64 addresses to rotate through): every
# per-address limit counts the /64, never the single address.
IPV6_LIMIT_PREFIX = 64


@functools.cache
def _networks(proxies: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(proxy, strict=False) for proxy in proxies)


def _trusted(address: IPAddress) -> bool:
    return any(address in network for network in _networks(tuple(settings.TRUSTED_PROXIES)))


def _parse(value: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(value.strip())
    except ValueError:
        return None


def client_ip(request) -> str | None:
    """
    The client's address: the socket's, unless the socket is one of our TRUSTED_PROXIES. Then
    X-Forwarded-For is read from the right (each proxy appends the address it saw): the first
    address that is not one of our proxies is the client. Everything left of it was written
    by the client and can be forged. Anything that is not an IP address counts as unknown.
    """
    address = _parse(request.META.get("REMOTE_ADDR", ""))
    if address is None or not _trusted(address):
        return str(address) if address else None
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    for hop in reversed([hop for hop in forwarded.split(",") if hop.strip()]):
        address = _parse(hop)
        if address is None:
            return None
        if not _trusted(address):
            break
    return str(address)


def client_ip_for_limits(request) -> str | None:
    """
    The client's address as rate limits and the sign-in lockout count it: an IPv6 address
    stands for its /64 (written as the network's first address), an IPv4 address for itself.
    """
    ip = client_ip(request)
    if ip is None or ":" not in ip:
        return ip
    return str(ipaddress.ip_network(f"{ip}/{IPV6_LIMIT_PREFIX}", strict=False).network_address)
