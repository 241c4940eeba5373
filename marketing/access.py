"""
The access log as the marketing app writes to it (previews of a real customer's message, list
exports). The one place this app imports it from.
"""

from privacy.models import AccessLog
from privacy.services import access_log_record

__all__ = ["AccessLog", "access_log_record"]
