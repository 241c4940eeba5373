"""
The JSON file of everything held about a customer (GDPR Art. 15 and 20): the same file for
the customer (preference page) and for staff. The format is described in the README.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.http import HttpResponse
from django.utils import timezone

from customers.models import Customer

from .selectors import customer_export

EXPORT_FORMAT = "consentdesk.customer-export/1"


def export_document(customer: Customer) -> dict[str, Any]:
    return {
        "format": EXPORT_FORMAT,
        "generated_at": timezone.now().isoformat(),
        **customer_export(customer=customer),
    }


def export_response(customer: Customer, *, filename: str = "") -> HttpResponse:
    body = json.dumps(export_document(customer), cls=DjangoJSONEncoder, indent=2, ensure_ascii=False)
    response = HttpResponse(body, content_type="application/json; charset=utf-8")
    filename = filename or f"my-data-{timezone.localdate():%Y-%m-%d}.json"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
