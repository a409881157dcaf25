"""Signed inbound webhooks: outside systems send events and decide approvals.

A sender signs ``"<timestamp>.<raw body>"`` with HMAC-SHA256 and a shared secret and sends
``X-HITL-Timestamp: <unix seconds>`` and ``X-HITL-Signature: sha256=<hex digest>``. A request is
accepted only if the signature matches one of ``HITL_WEBHOOK_SECRETS`` (several allow rotation;
compared in constant time), the timestamp is within ``HITL_WEBHOOK_TOLERANCE_SECONDS`` (five
minutes) of now, and the same signature was never accepted before (replay).

The body is JSON with an ``action``; handlers are registered in ``actions`` (the engine registers
``event.notify``; approvals registers ``approval.decide``). A handler gets the parsed body and the
service user named by ``HITL_WEBHOOK_USER`` and returns a JSON-able result.
"""

import hashlib
import hmac
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction

from hitlproject.parsing import whole_number

from . import clock
from .errors import InvalidInput, WorkflowError
from .models import WebhookReceipt
from .registry import contains_nul

SIGNATURE_HEADER = "X-HITL-Signature"
TIMESTAMP_HEADER = "X-HITL-Timestamp"

WebhookAction = Callable[[dict, Any], dict]
actions: dict[str, WebhookAction] = {}


class SignatureRejected(WorkflowError):
    """Missing, malformed, expired or wrong signature (HTTP 401)."""


class WebhookReplayed(WorkflowError):
    """This exact signed request was already accepted (HTTP 409)."""


class WebhooksDisabled(WorkflowError):
    """No HITL_WEBHOOK_SECRETS configured (HTTP 503 would leak config; we answer 404)."""


def sign(secret: str, timestamp: int | str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"sha256={digest.hexdigest()}"


def verify(*, timestamp: str | None, signature: str | None, body: bytes) -> str:
    """Return the accepted signature or raise ``SignatureRejected`` saying why."""
    secrets = [s for s in settings.HITL_WEBHOOK_SECRETS if s]
    if not secrets:
        raise WebhooksDisabled("Inbound webhooks are not configured.")
    if not timestamp or not signature:
        raise SignatureRejected(f"Both {TIMESTAMP_HEADER} and {SIGNATURE_HEADER} are required.")
    # Not int(): it takes "1" and 400 zeros, which overflows the float arithmetic below.
    sent_at = whole_number(timestamp)
    if sent_at is None:
        raise SignatureRejected(f"{TIMESTAMP_HEADER} must be Unix seconds.")
    tolerance = settings.HITL_WEBHOOK_TOLERANCE_SECONDS
    if abs(clock.now().timestamp() - sent_at) > tolerance:
        raise SignatureRejected(
            f"{TIMESTAMP_HEADER} is more than {tolerance} seconds away from the server's time."
        )
    # Compare bytes (compare_digest refuses non-ASCII str: a header is whatever a client sends),
    # against every secret without stopping early, so timing reveals nothing.
    given = signature.encode("utf-8", "replace")
    matches = [
        hmac.compare_digest(sign(secret, timestamp, body).encode(), given) for secret in secrets
    ]
    if not any(matches):
        raise SignatureRejected("The signature does not match the body and timestamp.")
    return signature


def receive(*, timestamp: str | None, signature: str | None, body: bytes, payload: Any) -> dict:
    """Verify, refuse replays, and run the action, all in one transaction: an action that
    fails leaves no receipt, so the sender may fix it and send again."""
    accepted = verify(timestamp=timestamp, signature=signature, body=body)
    if not isinstance(payload, dict):
        raise InvalidInput("The webhook body must be a JSON object with an 'action'.")
    if contains_nul(payload):
        # Its fields become text columns and jsonb, neither of which can hold one.
        raise InvalidInput("The webhook body contains a NUL character (\\u0000).")
    name = payload.get("action")
    handler = actions.get(name) if isinstance(name, str) else None
    if handler is None:
        known = ", ".join(sorted(actions))
        raise InvalidInput(
            f"Unknown webhook action {name!r}; known actions: {known}.",
            errors={"action": [f"Must be one of: {known}."]},
        )
    try:
        with transaction.atomic():
            WebhookReceipt.objects.create(signature=accepted.removeprefix("sha256="), action=name)
            return handler(payload, service_user())
    except IntegrityError:
        raise WebhookReplayed("This webhook was already received (replay refused).") from None


def service_user() -> Any:
    """The user webhook actions act as (permissions and audit records name it)."""
    user, _ = get_user_model().objects.get_or_create(username=settings.HITL_WEBHOOK_USER)
    return user


def prune_receipts(now) -> int:
    """Receipts older than the tolerance window can no longer be replayed: drop them."""
    cutoff = now - timedelta(seconds=2 * settings.HITL_WEBHOOK_TOLERANCE_SECONDS)
    stale = WebhookReceipt.objects.filter(received_at__lt=cutoff)
    # Check first: a DELETE takes SQLite's write lock even when it matches nothing.
    if not stale.exists():
        return 0
    deleted, _ = stale.delete()
    return deleted


def checked(action: str, serializer_class: type, payload: dict) -> dict:
    """An action's fields, validated by ``serializer_class`` (a DRF serializer); otherwise
    ``InvalidInput`` (a 400) naming the action and each field's problem."""
    fields = serializer_class(data=payload)
    if not fields.is_valid():
        problems = "; ".join(
            f"{name}: {' '.join(map(str, why))}" for name, why in fields.errors.items()
        )
        raise InvalidInput(f"{action}: {problems}", errors=fields.errors)
    return fields.validated_data


def _notify(payload: dict, user: Any) -> dict:
    """``{"action": "event.notify", "event_id": <str>, "data": ...}``: the fields are checked as
    ``POST /api/v1/events/`` checks them (the service would store ``["a"]`` as "['a']")."""
    from .api.serializers import EventSerializer
    from .services import event_notify

    data = checked("event.notify", EventSerializer, payload)
    return event_notify(event_id=data["event_id"], data=data["data"]).as_dict()


actions["event.notify"] = _notify
