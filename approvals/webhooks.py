"""The ``approval.decide`` action of the signed inbound webhook (see workflows.webhooks)."""

from typing import Any

from django.contrib.auth import get_user_model
from rest_framework import serializers

from workflows.errors import InvalidInput
from workflows.webhooks import checked

from . import services
from .models import Action, ApprovalRequest, Channel


class WebhookDecision(serializers.Serializer):
    """The fields of ``approval.decide``: their types are checked here (a 400 naming the field),
    what they mean by ``services.approval_decide``, as for every channel."""

    # null where a field is optional means "not given", as it did before these checks.
    approval = serializers.CharField(max_length=100)
    decision = serializers.CharField(max_length=50)
    comment = serializers.CharField(
        required=False, allow_blank=True, allow_null=True, max_length=5000
    )
    value = serializers.JSONField(required=False)
    stage = serializers.CharField(required=False, allow_null=True, max_length=100)
    actor = serializers.CharField(required=False, allow_blank=True, allow_null=True, max_length=150)


def decide(payload: dict, service_user: Any) -> dict:
    """``{"action": "approval.decide", "approval": <id>, "decision": "approve"|"reject"|...,
    "comment": ..., "value": ..., "actor": <username, optional>}``.

    The signature vouches for the sender, which may act for one of its users (``actor``, e.g.
    the person who clicked in a chat tool); otherwise it acts as the webhook's service user.
    The same rules apply either way: the actor must be allowed to decide.
    """
    data = checked("approval.decide", WebhookDecision, payload)
    approval_id = services._as_uuid(data["approval"])
    approval = ApprovalRequest.objects.filter(pk=approval_id).first() if approval_id else None
    if approval is None:
        raise InvalidInput(
            f"No approval request {data['approval']!r}.",
            errors={"approval": ["Unknown approval request."]},
        )
    actor = service_user
    if data.get("actor"):
        actor = get_user_model().objects.filter(username=data["actor"], is_active=True).first()
        if actor is None:
            raise InvalidInput(
                f"No active user {data['actor']!r}.", errors={"actor": ["Unknown user."]}
            )
    record = services.approval_decide(
        request=approval,
        actor=actor,
        action=data["decision"],
        comment=data.get("comment") or "",
        value=data.get("value", services.NOTHING),
        stage=data.get("stage"),
        channel=Channel.WEBHOOK,
    )
    approval.refresh_from_db()
    return {
        "approval": str(approval.pk),
        "action": Action(record.action).value,
        "status": approval.status,
        "by": record.actor_name,
    }
