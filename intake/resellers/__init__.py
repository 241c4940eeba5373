"""One adapter per reseller. Add a reseller by writing a module with a ResellerAdapter and listing it here."""

from .base import ResellerAdapter
from .paddle import PaddleAdapter

ADAPTERS: dict[str, ResellerAdapter] = {"paddle": PaddleAdapter()}


def adapter_for(provider: str) -> ResellerAdapter:
    return ADAPTERS[provider]
