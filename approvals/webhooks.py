"""The ``approval.decide`` action of the signed inbound webhook (see workflows.webhooks)."""

from typing import Any

from django.contrib.auth import get_user_model

from workflows.errors import InvalidInput

from . import services
from .models import Action, ApprovalRequest, Channel


def decide(payload: dict, service_user: Any) -> dict:
    """``{"action": "approval.decide", "approval": <id>, "decision": "approve"|"reject"|...,
    "comment": ..., "value": ..., "actor": <username, optional>}``.

    The signature vouches for the sender, which may act for one of its users (``actor``, e.g.
    the person who clicked in a chat tool); otherwise it acts as the webhook's service user.
    The same rules apply either way: the actor must be allowed to decide.
    """
    approval_id = services._as_uuid(payload.get("approval"))
    approval = ApprovalRequest.objects.filter(pk=approval_id).first() if approval_id else None
    if approval is None:
        raise InvalidInput(
            f"No approval request {payload.get('approval')!r}.",
            errors={"approval": ["Unknown approval request."]},
        )
    actor = service_user
    if payload.get("actor"):
        actor = get_user_model().objects.filter(username=payload["actor"], is_active=True).first()
        if actor is None:
            raise InvalidInput(
                f"No active user {payload['actor']!r}.", errors={"actor": ["Unknown user."]}
            )
    record = services.approval_decide(
        request=approval,
        actor=actor,
        action=payload.get("decision") or "",
        comment=payload.get("comment") or "",
        value=payload.get("value", services.NOTHING),
        stage=payload.get("stage"),
        channel=Channel.WEBHOOK,
    )
    approval.refresh_from_db()
    return {
        "approval": str(approval.pk),
        "action": Action(record.action).value,
        "status": approval.status,
        "by": record.actor_name,
    }
