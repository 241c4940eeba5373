"""
The REST API. Views check the key's scope, call the services that change state (the same ones
admin and the preference page use), and answer in JSON; errors are problem details.
"""

from __future__ import annotations

from typing import Any, cast

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.generics import GenericAPIView
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response

from consents.models import ConsentEvent
from consents.receipts import RECEIPT_FORMATS, ReceiptRefused, receipt_filename, signed_receipt
from consents.selectors import consent_states
from consents.services import CustomerErased, RequestMeta, consent_set
from customers.models import Customer, CustomerChange, ProductRegistration
from customers.services import customer_create, customer_update, registration_refund
from marketing.eligibility import marketing_eligibility
from marketing.models import Campaign
from marketing.selectors import campaign_report

from . import serializers
from .access import record_api_access
from .idempotency import HEADER, idempotent
from .models import ApiKey, Scope
from .problems import Problem

IDEMPOTENCY = OpenApiParameter(
    HEADER,
    # Printable ASCII (checked by the server): no pattern here, because HTTP trims the spaces and
    # tabs around a header's value, so a pattern on them could not be kept by any server.
    {"type": "string", "minLength": 1, "maxLength": 255},
    OpenApiParameter.HEADER,
    required=False,
    description="1 to 255 printable ASCII characters. Retrying a POST with the same key returns the first answer "
    "and changes nothing; the same key with another body is refused (422).",
)
PROBLEM = OpenApiResponse(description="Problem details (RFC 9457): type, title, status, detail, code, errors.")
ERRORS = {400: PROBLEM, 401: PROBLEM, 403: PROBLEM, 404: PROBLEM, 422: PROBLEM, 429: PROBLEM}


def _validation_problem(error: ValidationError) -> Problem:
    errors = error.message_dict if hasattr(error, "error_dict") else {"non_field_errors": error.messages}
    return Problem(
        status_code=400, code="invalid_input", detail="The request has invalid fields: see errors.", errors=errors
    )


def _erased_problem() -> Problem:
    return Problem(status_code=409, code="customer_erased", detail="This customer's data was erased.")


class ApiView(GenericAPIView):
    required_scopes: dict[str, str] = {}

    @property
    def api_key(self) -> ApiKey:
        return cast(ApiKey, self.request.auth)  # the authentication class puts the key there

    def validated(self, request, *, partial: bool = False) -> dict[str, Any]:
        """The request's body checked by the view's serializer (a 400 problem if it is not valid)."""
        incoming = self.get_serializer(data=request.data, partial=partial)
        incoming.is_valid(raise_exception=True)
        return dict(incoming.validated_data)

    def customer(self, public_id) -> Customer:
        return get_object_or_404(Customer, public_id=public_id)

    def logged(self, customer: Customer, *, changed: bool = False) -> None:
        record_api_access(
            api_key=self.api_key,
            customer=customer,
            changed=changed,
            detail=f"{self.request.method} {self.request.path}"[:300],
        )


class CustomerCreateView(ApiView):
    required_scopes = {"POST": Scope.CUSTOMERS_WRITE}
    serializer_class = serializers.CustomerCreateSerializer

    @extend_schema(
        operation_id="customers_create",
        parameters=[IDEMPOTENCY],
        responses={201: serializers.CustomerSerializer, 409: PROBLEM, **ERRORS},
    )
    @idempotent
    def post(self, request):
        data = self.validated(request)
        if Customer.objects.by_email(data["email"]).exists():
            raise Problem(status_code=409, code="customer_exists", detail="A customer with this email address exists.")
        try:
            customer = customer_create(data=data)
        except ValidationError as error:
            raise _validation_problem(error) from None
        self.logged(customer, changed=True)
        return Response(serializers.CustomerSerializer(customer).data, status=status.HTTP_201_CREATED)


class CustomerDetailView(ApiView):
    required_scopes = {"GET": Scope.CUSTOMERS_READ, "PATCH": Scope.CUSTOMERS_WRITE}
    serializer_class = serializers.CustomerUpdateSerializer

    @extend_schema(operation_id="customers_read", responses={200: serializers.CustomerSerializer, **ERRORS})
    def get(self, request, public_id):
        customer = self.customer(public_id)
        self.logged(customer)
        return Response(serializers.CustomerSerializer(customer).data)

    @extend_schema(
        operation_id="customers_update",
        request=serializers.CustomerUpdateSerializer,
        responses={200: serializers.CustomerSerializer, 409: PROBLEM, **ERRORS},
        description="Corrects the fields sent; each change is recorded with its old and new value.",
    )
    def patch(self, request, public_id):
        customer = self.customer(public_id)
        if customer.erased_at is not None:
            raise _erased_problem()
        data = self.validated(request, partial=True)
        try:
            with transaction.atomic():
                customer_update(customer=customer, data=data, changed_by=CustomerChange.ChangedBy.API)
        except ValidationError as error:
            raise _validation_problem(error) from None
        self.logged(customer, changed=True)
        customer.refresh_from_db()
        return Response(serializers.CustomerSerializer(customer).data)


class CustomerLookupView(ApiView):
    """A POST, so that addresses stay out of URLs and logs."""

    required_scopes = {"POST": Scope.CUSTOMERS_READ}
    serializer_class = serializers.LookupSerializer

    @extend_schema(
        operation_id="customers_lookup",
        parameters=[IDEMPOTENCY],
        responses={200: serializers.CustomerSerializer, **ERRORS},
    )
    @idempotent
    def post(self, request):
        email = self.validated(request)["email"]
        customer = Customer.objects.not_erased().by_email(email).first()
        if customer is None:
            raise Problem(status_code=404, code="not_found", detail="No customer has this email address.")
        self.logged(customer)
        return Response(serializers.CustomerSerializer(customer).data)


class ConsentView(ApiView):
    required_scopes = {"GET": Scope.CONSENT_READ, "POST": Scope.CONSENT_WRITE}
    serializer_class = serializers.ConsentDecisionSerializer

    @extend_schema(
        operation_id="consent_states", responses={200: serializers.ConsentStateSerializer(many=True), **ERRORS}
    )
    def get(self, request, public_id):
        customer = self.customer(public_id)
        self.logged(customer)
        states = consent_states(customer=customer)
        return Response(serializers.ConsentStateSerializer(states, many=True).data)

    @extend_schema(
        operation_id="consent_record",
        parameters=[IDEMPOTENCY],
        responses={
            201: serializers.ConsentDecisionResultSerializer,
            200: serializers.ConsentDecisionResultSerializer,
            409: PROBLEM,
            **ERRORS,
        },
        description="Records a decision with its proof through the consent service; ledger events never change.",
    )
    @idempotent
    def post(self, request, public_id):
        customer = self.customer(public_id)
        data = self.validated(request)
        try:
            event = consent_set(
                customer=customer,
                purpose=data["purpose"],
                granted=data["granted"],
                source=data["source"],
                method=data.get("method"),
                occurred_at=data.get("occurred_at"),
                wording=data["wording"],
                language=data["language"],
                request_meta=RequestMeta(ip_address=data.get("ip_address"), user_agent=data.get("user_agent", "")),
                reference=data.get("reference") or f"api:{self.api_key.prefix}",
                note=f"Recorded through the API by {self.api_key.label}.",
            )
        except CustomerErased:
            raise _erased_problem() from None
        except ValidationError as error:
            raise _validation_problem(error) from None
        self.logged(customer, changed=True)
        body = {
            "recorded": event is not None,
            "event": serializers.ConsentEventSerializer(event).data if event else None,
        }
        return Response(body, status=status.HTTP_201_CREATED if event else status.HTTP_200_OK)


class LedgerPagination(CursorPagination):
    page_size = 50
    ordering = ("-occurred_at", "-id")


class ConsentEventsView(ApiView):
    required_scopes = {"GET": Scope.CONSENT_READ}
    serializer_class = serializers.ConsentEventSerializer
    pagination_class = LedgerPagination

    @extend_schema(
        operation_id="consent_events_list", responses={200: serializers.ConsentEventSerializer(many=True), **ERRORS}
    )
    def get(self, request, public_id):
        customer = self.customer(public_id)
        self.logged(customer)
        events = ConsentEvent.objects.filter(customer=customer).select_related("purpose", "policy_version")
        page = self.paginate_queryset(events)
        return self.get_paginated_response(self.get_serializer(page, many=True).data)


class RegistrationCreateView(ApiView):
    required_scopes = {"POST": Scope.REGISTRATIONS_WRITE}
    serializer_class = serializers.RegistrationCreateSerializer

    @extend_schema(
        operation_id="registrations_create",
        parameters=[IDEMPOTENCY],
        responses={201: serializers.RegistrationSerializer, 409: PROBLEM, **ERRORS},
    )
    @idempotent
    def post(self, request):
        data = self.validated(request)
        customer = Customer.objects.filter(public_id=data.pop("customer")).first()
        if customer is None:
            raise Problem(
                status_code=400,
                code="invalid_input",
                detail="No customer has this public id.",
                errors={"customer": ["Unknown customer."]},
            )
        if customer.erased_at is not None:
            raise _erased_problem()
        registration = ProductRegistration(customer=customer, **data)
        try:
            registration.full_clean()
        except ValidationError as error:
            raise _validation_problem(error) from None
        registration.save()
        self.logged(customer, changed=True)
        return Response(serializers.RegistrationSerializer(registration).data, status=status.HTTP_201_CREATED)


class RegistrationRefundView(ApiView):
    required_scopes = {"POST": Scope.REGISTRATIONS_WRITE}
    serializer_class = serializers.RefundSerializer

    @extend_schema(
        operation_id="registrations_refund",
        parameters=[IDEMPOTENCY],
        responses={200: serializers.RegistrationSerializer, 409: PROBLEM, **ERRORS},
    )
    @idempotent
    def post(self, request, registration_id: int):
        registration = get_object_or_404(ProductRegistration.objects.select_related("customer"), pk=registration_id)
        if registration.refunded_at is not None:
            raise Problem(status_code=409, code="already_refunded", detail="This registration is refunded already.")
        data = self.validated(request)
        refunded_at = data.get("refunded_at") or timezone.now()
        reason = data.get("late_refund_reason", "").strip()
        late = registration.money_back_deadline is not None and refunded_at > registration.money_back_deadline
        if late and not reason:
            raise Problem(
                status_code=422,
                code="refund_after_deadline",
                detail=f"The {settings.MONEY_BACK_DAYS}-day money-back deadline has passed: give late_refund_reason.",
            )
        try:
            registration_refund(registration=registration, refunded_at=refunded_at, by_reseller=late, note=reason)
        except ValidationError as error:
            raise _validation_problem(error) from None
        self.logged(registration.customer, changed=True)
        return Response(serializers.RegistrationSerializer(registration).data)


class MailabilityView(ApiView):
    required_scopes = {"POST": Scope.SUPPRESSION_READ}
    serializer_class = serializers.MailabilitySerializer

    @extend_schema(
        operation_id="suppression_check",
        parameters=[IDEMPOTENCY],
        responses={200: serializers.MailabilityResultSerializer, **ERRORS},
        description="May we mail this address for this purpose now?"
        " Consent, suppression and erasure, as sending decides.",
    )
    @idempotent
    def post(self, request):
        data = self.validated(request)
        reason = marketing_eligibility(email=data["email"], purpose=data["purpose"])
        body: dict[str, object] = {"may_send": reason is None}
        if reason is not None and self.api_key.has_scope(Scope.CUSTOMERS_READ):
            body["reason"] = str(reason)
        return Response(body)


class _FormatIsNotARenderer(DefaultContentNegotiation):
    # DRF reads ?format= as the renderer to use; here it names the receipt's standard.
    def select_renderer(self, request, renderers, format_suffix=None):
        return super().select_renderer(request, renderers, format_suffix="json")


class ReceiptView(ApiView):
    """The customer's consent receipt, signed: what the admin download and `consent_receipt` give."""

    required_scopes = {"GET": Scope.CONSENT_READ}
    content_negotiation_class = _FormatIsNotARenderer

    @extend_schema(
        operation_id="consent_receipt",
        parameters=[
            OpenApiParameter(
                "format",
                {"type": "string", "enum": list(RECEIPT_FORMATS), "default": "kantara"},
                OpenApiParameter.QUERY,
                required=False,
                description="kantara: Kantara Consent Receipt v1.1; iso27560: ISO/IEC TS 27560 record in DPV JSON-LD.",
            )
        ],
        responses={200: serializers.SignedReceiptSerializer, 409: PROBLEM, **ERRORS},
        description="The receipt names the customer by address, so the key needs customers:read as well as "
        "consent:read. Verify it with the key set at /.well-known/jwks.json.",
    )
    def get(self, request, public_id):
        if not self.api_key.has_scope(Scope.CUSTOMERS_READ):
            raise Problem(
                status_code=403,
                code="missing_scope",
                detail=f"This API key does not have the scope {Scope.CUSTOMERS_READ} (a receipt names the customer).",
            )
        receipt_format = request.query_params.get("format", "kantara")
        if receipt_format not in RECEIPT_FORMATS:
            raise Problem(
                status_code=400,
                code="invalid_input",
                detail="Unknown receipt format: use kantara or iso27560.",
                errors={"format": [f"Choose one of: {', '.join(RECEIPT_FORMATS)}."]},
            )
        customer = self.customer(public_id)
        try:
            signed = signed_receipt(customer=customer, receipt_format=receipt_format)
        except ReceiptRefused as refusal:
            raise Problem(status_code=409, code="customer_erased", detail=str(refusal)) from None
        self.logged(customer)
        response = Response(signed)
        response["Content-Disposition"] = f'inline; filename="{receipt_filename(customer, receipt_format)}"'
        return response


class CampaignReportView(ApiView):
    required_scopes = {"GET": Scope.CAMPAIGNS_READ}
    serializer_class = serializers.CampaignReportSerializer

    @extend_schema(
        operation_id="campaign_report",
        parameters=[serializers.ReportQuerySerializer],
        responses={200: serializers.CampaignReportSerializer, **ERRORS},
        description="A campaign's figures, rates and their course over time, as its admin page shows them "
        "(docs/campaign-report.md). Holds no customer data.",
    )
    def get(self, request, public_id):
        query = serializers.ReportQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        campaign = get_object_or_404(Campaign.objects.select_related("purpose"), public_id=public_id)
        report = campaign_report(campaign, interval=query.validated_data.get("interval"))
        body = {
            "campaign": campaign.public_id,
            "name": campaign.name,
            "status": campaign.status,
            "purpose": campaign.purpose.code,
            "dispatched_at": campaign.dispatched_at,
            "finished_at": campaign.finished_at,
            "deliveries": report.total,
            "queued": report.queued,
            "sending": report.sending,
            "sent": report.sent,
            "skipped": report.skipped,
            "failed": report.failed,
            "unknown": report.unknown,
            "bounced": report.bounced,
            "complained": report.complained,
            "unsubscribed": report.unsubscribed,
            "rates": report.rates,
            "interval": report.interval,
            "series": [
                {
                    "start": bucket.start,
                    "sent": bucket.sent,
                    "unsubscribed": bucket.unsubscribed,
                    "bounced": bucket.bounced,
                    "complained": bucket.complained,
                }
                for bucket in report.series
            ],
        }
        return Response(serializers.CampaignReportSerializer(body).data)
