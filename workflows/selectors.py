"""Read-side queries over runs, shared by the admin, the management commands and the API.

Selectors never write. They return querysets (so callers can filter, order and paginate
further) or plain data, and they fetch related rows in a fixed number of queries.
"""

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import OuterRef, QuerySet, Subquery

from . import clock
from .models import RunEvent, RunStatus, Step, WaitPoint, WaitStatus, WorkflowRun


def runs_with_waits(
    *,
    statuses: Iterable[str] | None = None,
    workflow_name: str | None = None,
    queryset: QuerySet[WorkflowRun] | None = None,
) -> QuerySet[WorkflowRun]:
    """Runs annotated with the open wait each one is suspended on, if any.

    Adds ``wait_kind``, ``wait_key``, ``wait_event_id`` and ``wait_deadline`` (all ``None`` for
    runs that wait for nothing) as correlated subqueries, so listing any number of runs costs one
    query. A run waits for at most one thing at a time; should there ever be several open waits,
    the earliest (by sequence) is the one it is blocked on.
    """
    runs = queryset if queryset is not None else WorkflowRun.objects.all()
    if statuses:
        runs = runs.filter(status__in=list(statuses))
    if workflow_name:
        runs = runs.filter(workflow_name=workflow_name)
    open_wait = WaitPoint.objects.filter(run=OuterRef("pk"), status=WaitStatus.OPEN).order_by(
        "sequence"
    )
    return runs.annotate(
        wait_kind=Subquery(open_wait.values("kind")[:1]),
        wait_key=Subquery(open_wait.values("key")[:1]),
        wait_event_id=Subquery(open_wait.values("event_id")[:1]),
        wait_deadline=Subquery(open_wait.values("deadline")[:1]),
    )


def run_waiting_for(run: WorkflowRun, now: datetime | None = None) -> tuple[str, datetime | None]:
    """What a run from ``runs_with_waits`` waits for, in words, and until when.

    ``("event 'go' (order-7)", deadline)`` for an open wait; ``("retry of a step", wake_at)``
    for a pending run whose next attempt lies in the future; ``("", None)`` otherwise.
    """
    kind = getattr(run, "wait_kind", None)
    if kind:
        target = f" ({run.wait_event_id})" if run.wait_event_id else ""
        return f"{kind} '{run.wait_key}'{target}", run.wait_deadline
    now = now or clock.now()
    if run.status == RunStatus.PENDING and run.wake_at and run.wake_at > now:
        return "next attempt", run.wake_at
    return "", None


def workflow_names() -> list[str]:
    """Names of workflows that have runs, for filters (registered or not any more)."""
    return list(
        WorkflowRun.objects.order_by("workflow_name")
        .values_list("workflow_name", flat=True)
        .distinct()
    )


@dataclass(frozen=True)
class TimelineEntry:
    """One line of a run's history: a step, a wait or an outbox event."""

    at: datetime | None
    source: str  # "step", "wait" or "event"
    title: str
    status: str = ""
    details: list[str] = field(default_factory=list)
    error: str = ""
    traceback: str = ""
    # Tie-breaker for entries with the same time: sequence (steps, waits) or seq (events).
    order: int = 0


_SOURCE_RANK = {"step": 0, "wait": 1, "event": 2}


def run_timeline(run: WorkflowRun) -> list[TimelineEntry]:
    """The run's steps, waits and run events merged in time order (three queries)."""
    entries: list[TimelineEntry] = []
    steps = Step.objects.filter(run=run).order_by("sequence")
    waits = WaitPoint.objects.filter(run=run).select_related("resolved_by").order_by("sequence")
    events = RunEvent.objects.filter(run=run).order_by("seq")
    entries.extend(_step_entry(step) for step in steps)
    entries.extend(_wait_entry(wait) for wait in waits)
    entries.extend(_event_entry(event) for event in events)
    # Entries without a time (a step not started yet) go last.
    return sorted(
        entries,
        key=lambda e: (
            e.at is None,
            e.at.timestamp() if e.at else 0,
            _SOURCE_RANK[e.source],
            e.order,
        ),
    )


def _step_entry(step: Step) -> TimelineEntry:
    details = [f"{step.get_kind_display().lower()}"]
    if step.attempts:
        details.append(f"{step.attempts} attempt{'s' if step.attempts != 1 else ''}")
    if step.duration is not None:
        details.append(format_duration(step.duration))
    if step.result is not None:
        details.append(f"result: {preview(step.result)}")
    if step.next_attempt_at:
        details.append(f"next attempt at {step.next_attempt_at:%Y-%m-%d %H:%M:%S %Z}")
    error = f"{step.error_type}: {step.error}" if step.error_type else step.error
    return TimelineEntry(
        at=step.started_at or step.finished_at,
        source="step",
        title=f"#{step.sequence} {step.name}",
        status=step.status,
        details=details,
        error=error,
        traceback=step.traceback,
        order=step.sequence,
    )


def _wait_entry(wait: WaitPoint) -> TimelineEntry:
    target = f" on event id {wait.event_id}" if wait.event_id else ""
    details = []
    if wait.deadline:
        details.append(f"deadline {wait.deadline:%Y-%m-%d %H:%M:%S %Z}")
    if wait.resolved_at:
        who = f" by {wait.resolved_by}" if wait.resolved_by_id else ""
        details.append(f"{wait.get_status_display().lower()} at {wait.resolved_at:%H:%M:%S}{who}")
    if wait.resolution is not None:
        details.append(f"resolution: {preview(wait.resolution)}")
    return TimelineEntry(
        at=wait.created_at,
        source="wait",
        title=f"#{wait.sequence} waits for {wait.get_kind_display().lower()} '{wait.key}'{target}",
        status=wait.status,
        details=details,
        order=wait.sequence,
    )


def _event_entry(event: RunEvent) -> TimelineEntry:
    return TimelineEntry(
        at=event.created_at,
        source="event",
        title=f"{event.type}",
        details=[preview(event.data, limit=300)] if event.data else [],
        order=event.seq,
    )


def preview(value: Any, limit: int = 120) -> str:
    """Compact JSON of ``value``, cut at ``limit`` characters."""
    text = json.dumps(value, cls=DjangoJSONEncoder, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def format_duration(delta: timedelta) -> str:
    seconds = delta.total_seconds()
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {secs:02d}s"
