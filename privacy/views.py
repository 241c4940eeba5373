"""Staff download of a customer's data export: the same JSON file the customer gets."""

import logging

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from django.utils import timezone
from django.views.decorators.http import require_GET

from common.requests import StaffRequest
from customers.models import Customer
from customers.validators import is_row_id

from .exports import export_response
from .models import AccessLog, PrivacyRequest
from .services import access_log_record

logger = logging.getLogger(__name__)


@require_GET
def customer_export(request: StaffRequest, public_id) -> HttpResponse:
    if not request.user.has_perm("customers.export_customer"):
        raise PermissionDenied("You may not download customers' data exports.")
    customer = get_object_or_404(Customer, public_id=public_id)
    logger.info("Staff user %s downloaded the data export of customer %s", request.user.pk, customer.public_id)
    # Downloaded from an access request's page: the audit trail names the request.
    request_id = _int(request.GET.get("request"))
    privacy_request = (
        PrivacyRequest.objects.filter(customer=customer, pk=request_id).first() if request_id is not None else None
    )
    access_log_record(
        staff_user=request.user,
        action=AccessLog.Action.EXPORTED,
        customer=customer,
        detail=f"for privacy request {privacy_request.pk}" if privacy_request else "",
    )
    response = export_response(customer, filename=f"customer-{customer.public_id}-{timezone.localdate():%Y-%m-%d}.json")
    response["Cache-Control"] = "no-store"
    return response


def _int(value) -> int | None:
    return int(value) if value and is_row_id(value) else None


# Through the admin site's own check, so the download asks for exactly what admin pages do
# (a staff sign-in, and the second factor where STAFF_REQUIRE_2FA is on).
customer_export_view = admin.site.admin_view(customer_export)
