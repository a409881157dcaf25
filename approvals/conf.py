"""Settings of the approvals app, with their defaults. Read at call time (tests override them).

``HITL_NOTIFICATION_CHANNELS``: a list of channel configurations, each a dict with ``type``
(``email``, ``slack``, ``webhook`` or a dotted path to a ``NotificationChannel`` subclass),
an optional ``name`` and ``hooks`` (the hooks it receives; default all) and the channel's own
options. A plain string is short for ``{"type": <string>}``. When the setting is absent the
channels come from the environment: email always, Slack when ``HITL_SLACK_WEBHOOK_URL`` is set,
the signed webhook when ``HITL_NOTIFY_WEBHOOK_URL`` is set (secret ``HITL_NOTIFY_WEBHOOK_SECRET``).
"""

import os
from typing import Any

from django.conf import settings


def notification_channels() -> list[dict[str, Any]]:
    configured = getattr(settings, "HITL_NOTIFICATION_CHANNELS", None)
    if configured is None:
        configured = ["email"]
        if os.environ.get("HITL_SLACK_WEBHOOK_URL"):
            configured.append(
                {"type": "slack", "webhook_url": os.environ["HITL_SLACK_WEBHOOK_URL"]}
            )
        if os.environ.get("HITL_NOTIFY_WEBHOOK_URL"):
            configured.append(
                {
                    "type": "webhook",
                    "url": os.environ["HITL_NOTIFY_WEBHOOK_URL"],
                    "secret": os.environ.get("HITL_NOTIFY_WEBHOOK_SECRET", ""),
                }
            )
    return [{"type": c} if isinstance(c, str) else dict(c) for c in configured]


def base_url() -> str:
    """Absolute origin for links in notifications (emails are read outside any request)."""
    value = getattr(settings, "HITL_BASE_URL", None) or os.environ.get(
        "HITL_BASE_URL", "http://localhost:8000"
    )
    return value.rstrip("/")


def link_max_age() -> int:
    """Seconds a signed decision link stays valid."""
    return int(getattr(settings, "HITL_DECISION_LINK_MAX_AGE", 3 * 24 * 3600))


def notification_max_attempts() -> int:
    return int(getattr(settings, "HITL_NOTIFICATION_MAX_ATTEMPTS", 5))


def notification_backoff_seconds() -> float:
    return float(getattr(settings, "HITL_NOTIFICATION_BACKOFF_SECONDS", 30.0))


def notification_http_timeout() -> float:
    return float(getattr(settings, "HITL_NOTIFICATION_HTTP_TIMEOUT", 10.0))
