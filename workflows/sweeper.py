"""The sweeper: fires due timers and deadlines, re-sends runs whose task may have been lost,
and hands runs of dead workers to live ones. Safe to run in many processes at once: every
change it makes is a conditional update or goes through a locked resolve."""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q

from . import clock, journal
from .models import RunStatus, WaitKind, WaitPoint, WaitStatus, WorkflowRun
from .queue import enqueue_advance

log = logging.getLogger(__name__)

BATCH = 500

# kind -> handler(wait, now) that deals with a passed deadline inside a transaction.
# Apps with waits of their own (approvals) register theirs; the default closes the wait.
DeadlineHandler = Callable[[WaitPoint, datetime], None]
deadline_handlers: dict[str, DeadlineHandler] = {}
# Extra periodic work (reminders...): called with ``now`` on every sweep.
sweep_hooks: list[Callable[[datetime], int]] = []


@dataclass
class SweepReport:
    timers_fired: int = 0
    runs_requeued: int = 0
    runs_recovered: int = 0
    hooks: int = 0

    @property
    def total(self) -> int:
        return self.timers_fired + self.runs_requeued + self.runs_recovered + self.hooks


def sweep(now: datetime | None = None) -> SweepReport:
    now = now or clock.now()
    report = SweepReport()
    report.timers_fired = fire_due_waits(now)
    report.runs_requeued = requeue_due_runs(now)
    report.runs_recovered = requeue_abandoned_runs(now)
    for hook in sweep_hooks:
        report.hooks += hook(now) or 0
    return report


def _default_deadline(wait: WaitPoint, now: datetime) -> None:
    # A sleep's deadline is its purpose; for every other wait it is a timeout.
    status = WaitStatus.RESOLVED if wait.kind == WaitKind.SLEEP else WaitStatus.TIMED_OUT
    event = None if wait.kind == WaitKind.SLEEP else "wait.timed_out"
    journal.wait_resolve(
        wait.pk,
        status=status,
        event_type=event,
        event_data={"wait_id": str(wait.pk), "kind": wait.kind, "key": wait.key},
    )


def fire_due_waits(now: datetime) -> int:
    due = list(
        WaitPoint.objects.filter(status=WaitStatus.OPEN, deadline__lte=now).order_by("deadline")[
            :BATCH
        ]
    )
    for wait in due:
        handler = deadline_handlers.get(wait.kind, _default_deadline)
        try:
            with transaction.atomic():
                handler(wait, now)
        except Exception:
            log.exception("Deadline of wait %s failed; it will be tried again", wait.pk)
    return len(due)


def _requeue(query, now: datetime) -> int:
    stale = now - timedelta(seconds=settings.HITL_REQUEUE_AFTER_SECONDS)
    query = query.filter(Q(enqueued_at__isnull=True) | Q(enqueued_at__lte=stale))
    ids = list(query.values_list("pk", flat=True)[:BATCH])
    if not ids:
        return 0
    # Re-check the condition in the UPDATE so two sweepers do not both send the same run.
    sent = 0
    for run_id in ids:
        with transaction.atomic():
            if query.filter(pk=run_id).update(enqueued_at=now):
                enqueue_advance(run_id)
                sent += 1
    return sent


def requeue_due_runs(now: datetime) -> int:
    """Pending runs whose time has come and for which no task was sent recently."""
    return _requeue(
        WorkflowRun.objects.filter(
            Q(status=RunStatus.PENDING) & (Q(wake_at__isnull=True) | Q(wake_at__lte=now))
        ),
        now,
    )


def requeue_abandoned_runs(now: datetime) -> int:
    """Running runs whose worker's lease expired: the worker died (SIGKILL, OOM, lost host)."""
    return _requeue(
        WorkflowRun.objects.filter(status=RunStatus.RUNNING, lease_expires_at__lt=now), now
    )


def next_due(now: datetime) -> datetime | None:
    """The earliest *future* moment something becomes due (for the in-worker timer's sleep).

    Things already due were handled by the sweep that just ran (or are enqueued and waiting for
    a worker); counting them would make the timer spin.
    """
    candidates = [
        WaitPoint.objects.filter(status=WaitStatus.OPEN, deadline__gt=now)
        .order_by("deadline")
        .values_list("deadline", flat=True)
        .first(),
        WorkflowRun.objects.filter(status=RunStatus.PENDING, wake_at__gt=now)
        .order_by("wake_at")
        .values_list("wake_at", flat=True)
        .first(),
    ]
    return min((c for c in candidates if c is not None), default=None)
