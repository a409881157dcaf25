"""One error shape for the whole API: ``{"code", "message", "fields"}``, never a 500 for input.

``fields`` maps a field (dotted path for nested JSON) to its messages and is present only for
validation errors; ``rule`` names the rule that refused an action (``ApprovalNotAllowed.rule``:
``not_assignee``, ``own_request``, ...), so a client can tell them apart without parsing text.
"""

from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from workflows import errors as wf
from workflows import webhooks

# Engine errors -> (HTTP status, code). Subclasses must come before their bases.
ENGINE_ERRORS: list[tuple[type[Exception], int, str]] = [
    (webhooks.WebhooksDisabled, status.HTTP_404_NOT_FOUND, "not_found"),
    (webhooks.SignatureRejected, status.HTTP_401_UNAUTHORIZED, "bad_signature"),
    (webhooks.WebhookReplayed, status.HTTP_409_CONFLICT, "replayed"),
    (wf.WaitClosed, status.HTTP_409_CONFLICT, "wait_closed"),
    (wf.WaitNotFound, status.HTTP_404_NOT_FOUND, "not_found"),
    (wf.RunNotFound, status.HTTP_404_NOT_FOUND, "not_found"),
    (wf.WorkflowNotFound, status.HTTP_400_BAD_REQUEST, "unknown_workflow"),
    (wf.InvalidInput, status.HTTP_400_BAD_REQUEST, "invalid_input"),
    (wf.NotSerializable, status.HTTP_400_BAD_REQUEST, "invalid_input"),
    (wf.InvalidTransition, status.HTTP_409_CONFLICT, "invalid_transition"),
]
# Other apps (approvals) add their error classes here.
extra_errors: list[tuple[type[Exception], int, str]] = []


def error_body(code: str, message: str, fields: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "message": message}
    if fields:
        body["fields"] = fields
    return body


def exception_handler(exc: Exception, context: dict) -> Response | None:
    for cls, http_status, code in extra_errors + ENGINE_ERRORS:
        if isinstance(exc, cls):
            fields = getattr(exc, "errors", None) if isinstance(exc, wf.InvalidInput) else None
            if fields == {"detail": [str(exc)]}:
                fields = None
            body = error_body(code, str(exc), fields)
            if isinstance(getattr(exc, "rule", None), str):
                body["rule"] = exc.rule
            return Response(body, status=http_status)

    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        fields = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        response.data = error_body("invalid", _summary(fields), fields)
    else:
        detail = exc.detail if isinstance(exc, exceptions.APIException) else str(exc)
        code = exc.get_codes() if isinstance(exc, exceptions.APIException) else "error"
        response.data = error_body(code if isinstance(code, str) else "error", str(detail))
    return response


def _summary(fields: dict) -> str:
    names = ", ".join(str(name) for name in fields)
    return f"Invalid input: {names}." if names else "Invalid input."


# Exempt: it only ever answers 404, and Django's CSRF check ran first for a POST to a
# malformed id (/api/v1/runs/0.5/cancel/), answering with its HTML 403 page instead.
@csrf_exempt
def json_not_found(request, exception=None):
    """404 for URLs under /api/ that match no route: JSON like every other API error."""
    from django.http import JsonResponse

    return JsonResponse(error_body("not_found", f"No API endpoint at {request.path}."), status=404)


def json_server_error(request):
    from django.http import JsonResponse

    return JsonResponse(error_body("server_error", "Internal server error."), status=500)
