"""django-q2 entry points of the approvals app. They take ids, never model instances.

Delivery retries are the app's own, like the engine's step retries: a failed attempt sets
``next_attempt_at`` (exponential backoff) and the sweeper's hook re-enqueues the notification
when it is due. django-q2 re-delivering a task is harmless: ``deliver`` claims the notification
with a conditional UPDATE first.
"""

import logging
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q

from workflows import clock

from . import conf
from .models import Notification, NotificationStatus

log = logging.getLogger(__name__)

DELIVER_TASK = "approvals.tasks.deliver"
BATCH = 500
MAX_BACKOFF_SECONDS = 3600.0


def enqueue(notification_ids: list[Any]) -> None:
    """Hand notifications to django-q2 (call after commit). A lost enqueue is re-sent by the
    sweeper after ``HITL_REQUEUE_AFTER_SECONDS``."""
    from django_q.tasks import async_task

    for notification_id in notification_ids:
        try:
            async_task(
                DELIVER_TASK,
                notification_id,
                task_name=f"notify-{notification_id}",
                group="hitl-notify",
            )
        except Exception:
            log.warning("Could not enqueue notification %s", notification_id, exc_info=True)


def deliver(notification_id: Any) -> str:
    """Send one notification now. Returns ``sent``, ``retry`` (failed, will be tried again),
    ``failed`` (no attempts left) or ``skipped`` (already sent, being sent, or not due)."""
    from .notifications import channel_named

    now = clock.now()
    claimed = Notification.objects.filter(
        pk=notification_id, status=NotificationStatus.PENDING, next_attempt_at__lte=now
    ).update(
        status=NotificationStatus.SENDING,
        attempts=F("attempts") + 1,
        claimed_at=now,
        enqueued_at=None,
    )
    if not claimed:
        return "skipped"
    notification = Notification.objects.get(pk=notification_id)
    try:
        channel_named(notification.channel).send(notification.message, delivery_id=notification.pk)
    except Exception as exc:
        return _failed(notification, exc)
    Notification.objects.filter(pk=notification.pk).update(
        status=NotificationStatus.SENT, sent_at=clock.now()
    )
    return "sent"


def _failed(notification: Notification, exc: Exception) -> str:
    error = f"{type(exc).__name__}: {exc}"[:2000]
    if notification.attempts >= notification.max_attempts:
        log.error("Notification %s failed for good: %s", notification.pk, error)
        Notification.objects.filter(pk=notification.pk).update(
            status=NotificationStatus.FAILED, last_error=error
        )
        return "failed"
    delay = min(
        conf.notification_backoff_seconds() * 2 ** (notification.attempts - 1),
        MAX_BACKOFF_SECONDS,
    )
    log.warning(
        "Notification %s attempt %s failed (%s); retrying in %ss",
        notification.pk,
        notification.attempts,
        error,
        delay,
    )
    Notification.objects.filter(pk=notification.pk).update(
        status=NotificationStatus.PENDING,
        last_error=error,
        next_attempt_at=clock.now() + timedelta(seconds=delay),
    )
    return "retry"


def requeue_due_notifications(now: datetime) -> int:
    """Sweep hook: enqueue notifications whose (next) attempt is due and that no task holds.

    Also takes back notifications whose sender died mid-attempt (claimed long ago)."""
    abandoned = now - timedelta(seconds=settings.HITL_TASK_TIMEOUT + 60)
    Notification.objects.filter(status=NotificationStatus.SENDING, claimed_at__lt=abandoned).update(
        status=NotificationStatus.PENDING, enqueued_at=None
    )

    stale = now - timedelta(seconds=settings.HITL_REQUEUE_AFTER_SECONDS)
    due = Notification.objects.filter(
        Q(enqueued_at__isnull=True) | Q(enqueued_at__lte=stale),
        status=NotificationStatus.PENDING,
        next_attempt_at__lte=now,
    )
    sent = []
    for notification_id in list(due.values_list("pk", flat=True)[:BATCH]):
        # Conditional, so two sweepers do not both enqueue the same notification.
        if due.filter(pk=notification_id).update(enqueued_at=now):
            sent.append(notification_id)
    if sent:
        transaction.on_commit(lambda: enqueue(sent))
    return len(sent)
