"""Signed decision links for email and chat: one per assignee, expiring, usable once.

A token carries the request, stage, user, action, an expiry and a nonce, signed with the
project's SECRET_KEY (``django.core.signing``). The approve and reject links sent to one person
share a nonce, so using either spends both. Expiry is checked against ``workflows.clock`` (tests
move time instead of waiting). Whether a nonce was used is recorded by
``services.approval_decide_by_link`` in the decision's transaction.
"""

import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.core import signing
from django.urls import reverse

from workflows import clock

from . import conf
from .errors import LinkExpired, LinkInvalid

SALT = "approvals.decision-link"
LINK_ACTIONS = ("approve", "reject")


@dataclass(frozen=True)
class LinkClaims:
    request_id: str
    stage_id: int
    user_id: Any
    action: str
    nonce: str
    expires_at: float


def make_token(
    *,
    request_id: Any,
    stage_id: int,
    user_id: Any,
    action: str,
    nonce: str,
    max_age: int | None = None,
) -> str:
    if action not in LINK_ACTIONS:
        raise ValueError(f"A decision link approves or rejects, not {action!r}.")
    expires = clock.now() + timedelta(
        seconds=max_age if max_age is not None else conf.link_max_age()
    )
    claims = {
        "r": str(request_id),
        "s": stage_id,
        "u": user_id,
        "a": action,
        "n": nonce,
        "e": int(expires.timestamp()),
    }
    return signing.dumps(claims, salt=SALT, compress=True)


def read_token(token: str) -> LinkClaims:
    """The link's claims; raises ``LinkInvalid`` (tampered) or ``LinkExpired``."""
    try:
        data = signing.loads(token, salt=SALT)
        claims = LinkClaims(
            request_id=data["r"],
            stage_id=int(data["s"]),
            user_id=data["u"],
            action=data["a"],
            nonce=str(data["n"]),
            expires_at=float(data["e"]),
        )
    except (signing.BadSignature, KeyError, TypeError, ValueError) as exc:
        raise LinkInvalid("This link is not valid.") from exc
    if claims.action not in LINK_ACTIONS:
        raise LinkInvalid("This link is not valid.")
    if clock.now().timestamp() > claims.expires_at:
        raise LinkExpired("This link has expired.")
    return claims


def decision_links(*, request_id: Any, stage_id: int, user_id: Any) -> dict[str, str]:
    """Absolute approve and reject URLs for one assignee (sharing one single-use nonce)."""
    nonce = secrets.token_urlsafe(16)
    return {
        action: conf.base_url()
        + reverse(
            "approvals:decision-link",
            args=[
                make_token(
                    request_id=request_id,
                    stage_id=stage_id,
                    user_id=user_id,
                    action=action,
                    nonce=nonce,
                )
            ],
        )
        for action in LINK_ACTIONS
    }
