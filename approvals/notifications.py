"""Notification channels and the hooks that feed them.

Hooks: ``approval_needed`` (a stage opened or was reassigned), ``approval_escalated``,
``reminder`` and ``approval_resolved``. ``notify()`` runs inside the decision's transaction and
only writes ``Notification`` rows (the rendered message, one per channel and, for email, per
recipient); ``approvals.tasks.deliver`` sends them after commit, in a django-q2 task, with
retries of its own. A channel that fails to render or to send never blocks or undoes a
decision.

Channels are configured in ``HITL_NOTIFICATION_CHANNELS`` (see ``approvals.conf``). A custom
channel subclasses ``NotificationChannel`` and is named by its dotted path in ``type``.
"""

import hashlib
import hmac
import json
import logging
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import NoReverseMatch, reverse
from django.utils.module_loading import import_string

from workflows import clock

from . import conf
from .models import (
    APPROVING_ACTIONS,
    ApprovalRequest,
    ApprovalStage,
    Notification,
)

log = logging.getLogger(__name__)

HOOKS = ("approval_needed", "approval_escalated", "reminder", "approval_resolved")
# Hooks whose recipients are asked to decide (and get personal decision links).
ASKING_HOOKS = frozenset({"approval_needed", "approval_escalated", "reminder"})


@dataclass
class NotificationEvent:
    """What a channel renders: the hook, the request and who should hear of it."""

    hook: str
    request: ApprovalRequest
    stage: ApprovalStage | None
    recipients: list = field(default_factory=list)

    @property
    def url(self) -> str:
        return approval_url(self.request)

    @property
    def headline(self) -> str:
        title, stage = self.request.title, self.stage.name if self.stage else ""
        return {
            "approval_needed": f"Approval needed ({stage}): {title}",
            "approval_escalated": f"Escalated to you ({stage}): {title}",
            "reminder": f"Reminder: waiting for your approval ({stage}): {title}",
        }.get(self.hook, f"{title}: {self.request.get_status_display().lower()}")

    def links_for(self, user: Any) -> dict[str, str] | None:
        """Personal approve / reject links for ``user`` when the hook asks them to decide."""
        if self.hook not in ASKING_HOOKS or self.stage is None or user is None:
            return None
        from .links import decision_links

        return decision_links(request_id=self.request.pk, stage_id=self.stage.pk, user_id=user.pk)

    def summary(self) -> dict:
        from .selectors import approval_summary

        return approval_summary(self.request)


def approval_url(request: ApprovalRequest) -> str:
    """Where a person looks at the request (the admin's page for it)."""
    try:
        path = reverse("admin:approvals_approvalrequest_change", args=[request.pk])
    except NoReverseMatch:
        path = "/admin/"
    return conf.base_url() + path


class NotificationChannel:
    """A place notifications go. ``messages`` renders (in the decision's transaction, must not
    do I/O); ``send`` delivers one rendered message (in a task; raise to have it retried)."""

    type = ""

    def __init__(self, *, name: str | None = None, hooks: list[str] | None = None, **options):
        self.name = name or self.type
        self.hooks = frozenset(hooks or HOOKS)
        self.options = options

    def wants(self, hook: str) -> bool:
        return hook in self.hooks

    def messages(self, event: NotificationEvent) -> list[tuple[Any, dict]]:
        """``[(recipient user or None, message)]`` for this event."""
        raise NotImplementedError

    def send(self, message: dict, *, delivery_id: Any = None) -> None:
        """``delivery_id`` is the same for every attempt of one notification."""
        raise NotImplementedError


class EmailChannel(NotificationChannel):
    """An email per recipient through Django's email backend: plain text and HTML, with a link
    to the request and, when asked to decide, personal approve / reject links."""

    type = "email"

    def messages(self, event):
        out = []
        for user in event.recipients:
            if not user.email:
                continue
            context = {
                "event": event,
                "hook": event.hook,
                "headline": event.headline,
                "request": event.request,
                "stage": event.stage,
                "user": user,
                "url": event.url,
                "links": event.links_for(user),
                "payload": json.dumps(event.request.value, indent=2, sort_keys=True, default=str),
                "progress": event.summary()["progress"],
            }
            out.append(
                (
                    user,
                    {
                        "to": [user.email],
                        "from": self.options.get("from_email") or settings.DEFAULT_FROM_EMAIL,
                        "subject": self.options.get("subject_prefix", "[Approvals] ")
                        + event.headline,
                        "text": render_to_string("approvals/email/notification.txt", context),
                        "html": render_to_string("approvals/email/notification.html", context),
                    },
                )
            )
        return out

    def send(self, message, *, delivery_id=None):
        email = EmailMultiAlternatives(
            subject=message["subject"],
            body=message["text"],
            from_email=message["from"],
            to=message["to"],
        )
        email.attach_alternative(message["html"], "text/html")
        email.send(fail_silently=False)


class SlackChannel(NotificationChannel):
    """A message to a Slack incoming webhook (``webhook_url``), linking to the request."""

    type = "slack"

    def messages(self, event):
        text = f"{event.headline}\n{event.summary()['progress']}\n<{event.url}|Open the request>"
        blocks = [
            {"type": "section", "text": {"type": "mrkdwn", "text": f"*{event.headline}*"}},
            {
                "type": "context",
                "elements": [
                    {"type": "mrkdwn", "text": event.summary()["progress"]},
                    {"type": "mrkdwn", "text": f"Run `{event.request.run_id}`"},
                ],
            },
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "text": {"type": "plain_text", "text": "Open"},
                        "url": event.url,
                    }
                ],
            },
        ]
        return [(None, {"text": text, "blocks": blocks})]

    def send(self, message, *, delivery_id=None):
        url = self.options.get("webhook_url")
        if not url:
            raise ValueError(f"Slack channel '{self.name}' has no webhook_url.")
        post_json(url, json.dumps(message).encode(), {})


class WebhookChannel(NotificationChannel):
    """A JSON POST to ``url`` signed with HMAC-SHA256 over ``"<timestamp>.<body>"`` using
    ``secret``; headers ``X-HITL-Timestamp``, ``X-HITL-Signature: sha256=<hex>``,
    ``X-HITL-Event`` and ``X-HITL-Delivery`` (stable across retries, for de-duplication).
    With ``include_links`` the body carries each assignee's personal decision links (for a bot
    that messages them directly)."""

    type = "webhook"

    def messages(self, event):
        body = {
            "hook": event.hook,
            "request": event.summary(),
            "run_id": str(event.request.run_id),
            "stage": event.stage.name if event.stage else None,
            "value": event.request.value,
            "url": event.url,
            "recipients": [u.get_username() for u in event.recipients],
        }
        if self.options.get("include_links"):
            body["links"] = {u.get_username(): event.links_for(u) for u in event.recipients}
        return [(None, body)]

    def send(self, message, *, delivery_id: Any = None):
        url, secret = self.options.get("url"), self.options.get("secret", "")
        if not url:
            raise ValueError(f"Webhook channel '{self.name}' has no url.")
        body = json.dumps(message, sort_keys=True, separators=(",", ":"), default=str).encode()
        timestamp = str(int(clock.now().timestamp()))
        headers = {
            "X-HITL-Timestamp": timestamp,
            "X-HITL-Signature": "sha256=" + sign(secret, timestamp, body),
            "X-HITL-Event": str(message.get("hook", "")),
            "X-HITL-Delivery": str(delivery_id or ""),
        }
        post_json(url, body, headers)


CHANNEL_TYPES: dict[str, type[NotificationChannel]] = {
    "email": EmailChannel,
    "slack": SlackChannel,
    "webhook": WebhookChannel,
}


def sign(secret: str, timestamp: str, body: bytes) -> str:
    return hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def verify_signature(
    secret: str, body: bytes, timestamp: str, signature: str, *, tolerance: int = 300
) -> bool:
    """For receivers of the webhook: signature matches and the timestamp is recent."""
    try:
        age = abs(clock.now().timestamp() - int(timestamp))
    except (TypeError, ValueError):
        return False
    expected = "sha256=" + sign(secret, timestamp, body)
    return age <= tolerance and hmac.compare_digest(expected, signature or "")


def post_json(url: str, body: bytes, headers: dict[str, str]) -> None:
    """POST; any non-2xx answer or network error raises (and the delivery is retried)."""
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", "User-Agent": "hitl-approvals", **headers},
    )
    with urllib.request.urlopen(request, timeout=conf.notification_http_timeout()) as response:
        response.read()


def configured_channels() -> list[NotificationChannel]:
    channels = []
    for config in conf.notification_channels():
        config = dict(config)
        kind = config.pop("type", "")
        cls = CHANNEL_TYPES.get(kind) or import_string(kind)
        channels.append(cls(**config))
    return channels


def channel_named(name: str) -> NotificationChannel:
    for channel in configured_channels():
        if channel.name == name:
            return channel
    raise LookupError(f"No notification channel named '{name}' is configured.")


def recipients_for(hook: str, request: ApprovalRequest, stage: ApprovalStage | None) -> list:
    from .selectors import stage_assignee_users

    if hook == "approval_resolved":
        return [request.requester] if request.requester_id else []
    if stage is None:
        return []
    if hook == "reminder" and stage.claimed_by_id:
        return [stage.claimed_by]
    users = stage_assignee_users(stage)
    if request.requester_id:
        users = users.exclude(pk=request.requester_id)
    if hook == "reminder":  # who already approved this stage needs no reminder
        users = users.exclude(
            pk__in=stage.decisions.filter(action__in=APPROVING_ACTIONS).values("actor_id")
        )
    return list(users)


def notify(hook: str, request: ApprovalRequest, *, stage: ApprovalStage | None = None) -> list:
    """Record the notifications of ``hook`` for every channel that takes it; they are sent
    after the surrounding transaction commits. Never raises: a broken channel is logged."""
    if hook not in HOOKS:
        raise ValueError(f"Unknown notification hook '{hook}'.")
    from .tasks import enqueue

    ids: list[int] = []
    try:
        event = NotificationEvent(hook, request, stage, recipients_for(hook, request, stage))
        channels = configured_channels()
    except Exception:
        log.exception("Could not prepare %s notifications for approval %s", hook, request.pk)
        return ids
    now = clock.now()
    for channel in channels:
        if not channel.wants(hook):
            continue
        try:
            with transaction.atomic():  # a savepoint: a failing channel leaves the decision alone
                for recipient, message in channel.messages(event):
                    ids.append(
                        Notification.objects.create(
                            request=request,
                            hook=hook,
                            channel=channel.name,
                            recipient=recipient,
                            message=message,
                            max_attempts=conf.notification_max_attempts(),
                            next_attempt_at=now,
                            enqueued_at=now,
                            created_at=now,
                        ).pk
                    )
        except Exception:
            log.exception("Channel '%s' could not render %s for %s", channel.name, hook, request.pk)
    if ids:
        transaction.on_commit(lambda: enqueue(ids))
    return ids
