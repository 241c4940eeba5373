"""
Errors as RFC 9457 problem details: `application/problem+json` with a stable `code` the caller
can branch on and a `detail` a person can read. Bad input is a 4xx, never a 500.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

PROBLEM_BASE = "https://consentdesk.dev/problems/"
CONTENT_TYPE = "application/problem+json"


class Problem(exceptions.APIException):
    """An error the API answers on purpose, with its own code."""

    def __init__(self, *, status_code: int, code: str, detail: str, errors: dict[str, Any] | None = None):
        super().__init__(detail=detail, code=code)
        self.status_code = status_code
        self.problem_code = code
        self.errors = errors


def problem_body(*, status_code: int, code: str, title: str, detail: str, errors: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + code,
        "title": title,
        "status": status_code,
        "detail": detail,
        "code": code,
    }
    if errors:
        body["errors"] = errors
    return body


_TITLES = {
    400: "Bad request",
    401: "Not authenticated",
    403: "Not allowed",
    404: "Not found",
    405: "Method not allowed",
    406: "Not acceptable",
    409: "Conflict",
    415: "Unsupported media type",
    422: "Unprocessable request",
    429: "Too many requests",
}


def _code_for(exc: exceptions.APIException) -> str:
    if isinstance(exc, Problem):
        return exc.problem_code
    return {
        exceptions.ValidationError: "invalid_input",
        exceptions.ParseError: "malformed_body",
        exceptions.AuthenticationFailed: "not_authenticated",
        exceptions.NotAuthenticated: "not_authenticated",
        exceptions.PermissionDenied: "missing_scope",
        exceptions.NotFound: "not_found",
        exceptions.MethodNotAllowed: "method_not_allowed",
        exceptions.NotAcceptable: "not_acceptable",
        exceptions.UnsupportedMediaType: "unsupported_media_type",
        exceptions.Throttled: "rate_limited",
    }.get(type(exc), "error")


def problem_exception_handler(exc, context):
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(detail=exc.message_dict if hasattr(exc, "error_dict") else exc.messages)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound("Nothing was found here.")
    response = exception_handler(exc, context)
    if response is None:
        return None
    assert isinstance(exc, exceptions.APIException)
    code = _code_for(exc)
    errors = None
    if isinstance(exc, exceptions.ValidationError):
        detail = "The request has invalid fields: see errors."
        errors = response.data if isinstance(response.data, dict) else {"non_field_errors": response.data}
    elif isinstance(exc, Problem):
        detail = str(exc.detail)
        errors = exc.errors
    else:
        detail = str(exc.detail)
    body = problem_body(
        status_code=response.status_code,
        code=code,
        title=_TITLES.get(response.status_code, "Error"),
        detail=detail,
        errors=errors,
    )
    headers = {k: v for k, v in response.headers.items() if k in ("Retry-After", "WWW-Authenticate", "Allow")}
    return Response(body, status=response.status_code, headers=headers, content_type=CONTENT_TYPE)


def not_found(request, *args, **kwargs) -> JsonResponse:
    """Unknown addresses under /api/ answer as the API does, not with the site's HTML page."""
    body = problem_body(status_code=404, code="not_found", title="Not found", detail="There is no such API address.")
    return JsonResponse(body, status=status.HTTP_404_NOT_FOUND, content_type=CONTENT_TYPE)
