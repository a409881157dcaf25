"""Every write the engine makes while advancing a run, each in its own short transaction.

All writes made on behalf of a worker are conditional on that worker still holding the run's
lease (``lease_owner`` and ``status=running``): a worker that lost its run (cancelled, or taken
over after its lease expired) gets ``LeaseLost`` and records nothing.
"""

import traceback as tb
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q

from . import clock, fastpath
from .models import (
    EventMessage,
    RunStatus,
    Step,
    StepKind,
    StepStatus,
    WaitKind,
    WaitPoint,
    WaitStatus,
    WorkflowRun,
)
from .outbox import next_event_seq, record_event
from .queue import enqueue_advance
from .transitions import transition


class LeaseLost(BaseException):
    """This worker no longer owns the run (cancelled, or reclaimed after its lease expired)."""


def lease_until(now: datetime) -> datetime:
    return now + timedelta(seconds=settings.HITL_LEASE_SECONDS)


def renew_lease(run_id: Any, owner: str) -> None:
    """Extend the lease; raises ``LeaseLost`` if the run is no longer ours (e.g. cancelled)."""
    now = clock.now()
    renewed = WorkflowRun.objects.filter(
        pk=run_id, status=RunStatus.RUNNING, lease_owner=owner
    ).update(lease_expires_at=lease_until(now), updated_at=now)
    if not renewed:
        raise LeaseLost()


def lease_and_event_seq(run_id: Any, owner: str, now: datetime) -> int:
    """Check and renew the lease and take the next event number, in one statement; raises
    ``LeaseLost``. Also the first statement of an atomic step's transaction (the caller's
    ``transaction.atomic``): the run's row stays locked until the step commits, so a cancel
    waits for the step instead of racing it."""
    seq = next_event_seq(run_id, owner=owner, lease_until=lease_until(now))
    if seq is None:
        raise LeaseLost()
    return seq


def describe_exception(exc: BaseException) -> dict[str, str]:
    return {
        "error_type": type(exc).__qualname__,
        "error": str(exc) or type(exc).__qualname__,
        "traceback": "".join(tb.format_exception(exc)),
    }


# --- steps ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Finished:
    """A step whose code returned (at ``at``) but whose completion is not written yet.

    The engine writes completions in the same transaction as the run's next journal write
    (the next step's start, a wait, the run's end), which halves the commits per step. Nothing
    runs between the two but the workflow's own deterministic code, so a crash in between is
    the same as a crash just before the completion committed: the step runs again, as it would
    have anyway.

    ``step`` is unsaved (no ``pk``) for a batched step (``ctx.step(..., batched=True)``): its
    start was not written either, and the completion inserts its record.
    """

    step: Step
    result: Any
    at: datetime


def step_begin(
    run_id: Any,
    owner: str,
    sequence: int,
    name: str,
    kind: str,
    max_attempts: int,
    existing: Step | None = None,
    finished: Sequence[Finished] = (),
) -> Step:
    """Record that an attempt of a step starts, before its code runs (so a crash is visible).

    Refuses (``LeaseLost``) once the run is no longer this worker's, e.g. cancelled: a cancelled
    run never starts another step. ``existing`` is the step's record from the replay (a retry,
    or a re-run after a crash); without one this is the first attempt: a single
    ``INSERT ... SELECT ... WHERE <lease still ours>``, the hot path of every step.
    ``finished``: completions held back so far, written in the same transaction.
    """
    now = clock.now()
    if existing is None and not finished:
        return _insert_first_attempt(run_id, owner, sequence, name, kind, max_attempts, now)
    if existing is None and fastpath.available():
        step_id = fastpath.complete_and_begin(
            run_id,
            owner,
            completions=_completions(finished),
            sequence=sequence,
            name=name,
            kind=kind,
            max_attempts=max_attempts,
            now=now,
            lease_until=lease_until(now),
        )
        if step_id is None:
            raise LeaseLost()
        return _new_step(step_id, run_id, sequence, name, kind, max_attempts, now)
    with transaction.atomic():
        if finished:
            write_completion(run_id, owner, finished, now)
        if existing is None:
            return _insert_first_attempt(run_id, owner, sequence, name, kind, max_attempts, now)
        renew_lease(run_id, owner)
        step = existing
        step.status = StepStatus.RUNNING
        step.attempts += 1
        step.max_attempts = max_attempts
        step.next_attempt_at = None
        step.started_at = now
        step.save(
            update_fields=["status", "attempts", "max_attempts", "next_attempt_at", "started_at"]
        )
    return step


def _insert_first_attempt(
    run_id: Any,
    owner: str,
    sequence: int,
    name: str,
    kind: str,
    max_attempts: int,
    now: datetime,
) -> Step:
    connection = transaction.get_connection()
    step_table, run_table = Step._meta.db_table, WorkflowRun._meta.db_table
    run_pk = WorkflowRun._meta.pk.get_db_prep_value(run_id, connection)
    sql = (
        f"INSERT INTO {step_table} {fastpath.STEP_COLUMNS} SELECT {fastpath.FIRST_ATTEMPT} "
        f"WHERE EXISTS (SELECT 1 FROM {run_table} WHERE id = %s AND status = %s "
        "AND lease_owner = %s) RETURNING id"
    )
    params = [
        *fastpath.first_attempt_params(run_pk, sequence, name, kind, max_attempts, now),
        run_pk,
        RunStatus.RUNNING,
        owner,
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        raise LeaseLost()
    return _new_step(row[0], run_id, sequence, name, kind, max_attempts, now)


def _new_step(
    pk: int, run_id: Any, sequence: int, name: str, kind: str, max_attempts: int, now: datetime
) -> Step:
    return Step(
        pk=pk,
        run_id=run_id,
        sequence=sequence,
        name=name,
        kind=kind,
        status=StepStatus.RUNNING,
        attempts=1,
        max_attempts=max_attempts,
        started_at=now,
    )


def step_complete(run_id: Any, owner: str, finished: Sequence[Finished]) -> None:
    """Write completions on their own (when no other journal write follows to carry them)."""
    now = clock.now()
    if fastpath.available():
        if not fastpath.complete_steps(
            run_id,
            owner,
            completions=_completions(finished),
            now=now,
            lease_until=lease_until(now),
        ):
            raise LeaseLost()
        return
    with transaction.atomic():
        write_completion(run_id, owner, finished, now)


def write_completion(run_id: Any, owner: str, finished: Sequence[Finished], now: datetime) -> None:
    """Inside the caller's transaction: the steps are completed, each with its
    ``step.finished`` event (a batched step's record is inserted completed).

    Raises ``LeaseLost`` (and so rolls the transaction back) if the run is no longer ours.
    """
    for item in finished:
        step = item.step
        seq = lease_and_event_seq(run_id, owner, now)
        if step.pk is None:
            step.status, step.result, step.finished_at = StepStatus.COMPLETED, item.result, item.at
            step.save(force_insert=True)
        else:
            Step.objects.filter(pk=step.pk).update(
                status=StepStatus.COMPLETED,
                result=item.result,
                finished_at=item.at,
                error="",
                error_type="",
                traceback="",
            )
        record_event(run_id, "step.finished", seq=seq, data=_finished_data(step, item.at))


def _completions(finished: Sequence[Finished]) -> list[tuple[Step, Any, datetime, dict]]:
    """``finished`` as ``fastpath`` takes it: (step, result, finished at, event data)."""
    return [(f.step, f.result, f.at, _finished_data(f.step, f.at)) for f in finished]


def _finished_data(step: Step, now: datetime) -> dict:
    return {
        "step": step.name,
        "sequence": step.sequence,
        "kind": step.kind,
        "status": "completed",
        "attempts": step.attempts,
        "duration_ms": _ms(step.started_at, now),
    }


# --- atomic steps: the step's own database writes commit with its record ------------------


def atomic_step_close(
    run_id: Any,
    *,
    seq: int,
    step: Step,
    result: Any,
    now: datetime,
) -> None:
    """Last statement of an atomic step's transaction: its completed record and event.
    ``step`` is the existing record (a retry) or an unsaved one for a first attempt."""
    step.status, step.result, step.finished_at = StepStatus.COMPLETED, result, now
    step.error = step.error_type = step.traceback = ""
    data = _finished_data(step, now)
    if step.pk is None and fastpath.available():
        fastpath.insert_completed_step(step, event_seq=seq, event_data=data, now=now)
        return
    step.save()
    record_event(run_id, "step.finished", seq=seq, data=data)


def atomic_step_failed(run_id: Any, owner: str, step: Step) -> Step:
    """Keep the record of an atomic step's failed attempt (its writes were rolled back), so
    retries count and the failure is visible; the caller then parks or fails the step."""
    with transaction.atomic():
        renew_lease(run_id, owner)
        step.status = StepStatus.RUNNING
        step.save()
    return step


def step_schedule_retry(
    run_id: Any, owner: str, step: Step, exc: BaseException, retry_at: datetime
) -> None:
    """Park the run until ``retry_at``; the sweeper enqueues it then (no worker sleeps)."""
    now = clock.now()
    with transaction.atomic():
        renew_lease(run_id, owner)
        Step.objects.filter(pk=step.pk).update(
            status=StepStatus.RETRYING,
            next_attempt_at=retry_at,
            finished_at=now,
            **describe_exception(exc),
        )
        transition(
            run_id,
            RunStatus.PENDING,
            frm=[RunStatus.RUNNING],
            where=Q(lease_owner=owner),
            wake_at=retry_at,
            enqueued_at=None,
            lease_owner="",
            lease_expires_at=None,
        )
        record_event(
            run_id,
            "step.retrying",
            {
                "step": step.name,
                "sequence": step.sequence,
                "attempt": step.attempts,
                "max_attempts": step.max_attempts,
                "retry_at": retry_at,
                "error": f"{type(exc).__qualname__}: {exc}",
            },
        )


def step_fail(run_id: Any, owner: str, step: Step, exc: BaseException) -> None:
    now = clock.now()
    with transaction.atomic():
        renew_lease(run_id, owner)
        Step.objects.filter(pk=step.pk).update(
            status=StepStatus.FAILED, finished_at=now, **describe_exception(exc)
        )
        record_event(
            run_id,
            "step.finished",
            {
                "step": step.name,
                "sequence": step.sequence,
                "kind": step.kind,
                "status": "failed",
                "attempts": step.attempts,
                "error": f"{type(exc).__qualname__}: {exc}",
            },
        )


def record_value(
    run_id: Any,
    owner: str,
    sequence: int,
    name: str,
    kind: str,
    value: Any,
    *,
    event_type: str | None = None,
    event_data: dict | None = None,
    finished: Sequence[Finished] = (),
) -> None:
    """Record a value (ctx.now(), ctx.uuid4(), ctx.emit()) so replays return the same one."""
    now = clock.now()
    with transaction.atomic():
        _lease_or_completion(run_id, owner, finished, now)
        Step.objects.create(
            run_id=run_id,
            sequence=sequence,
            name=name,
            kind=kind,
            status=StepStatus.COMPLETED,
            result=value,
            attempts=1,
            started_at=now,
            finished_at=now,
        )
        if event_type:
            record_event(run_id, event_type, event_data)


def _lease_or_completion(
    run_id: Any, owner: str, finished: Sequence[Finished], now: datetime
) -> None:
    """Both renew the lease (or raise ``LeaseLost``); a pending completion does it for free."""
    if not finished:
        renew_lease(run_id, owner)
    else:
        write_completion(run_id, owner, finished, now)


# --- waits ----------------------------------------------------------------------------------


def wait_enter(
    run_id: Any,
    owner: str,
    *,
    sequence: int,
    kind: str,
    key: str,
    event_id: str = "",
    request: dict | None = None,
    deadline: datetime | None = None,
    on_create: Any = None,
    finished: Sequence[Finished] = (),
) -> tuple[WaitPoint, Step | None]:
    """Register the wait (once) and, if it is not already satisfied, suspend the run.

    Returns the wait point, and its step's record when this call created it; if the wait is
    still open the run is ``waiting`` when this commits. Resolution and suspension both lock
    the wait row first, so a resolution racing the suspension either is seen here or finds the
    run already waiting and wakes it.
    """
    now = clock.now()
    step = None
    with transaction.atomic():
        _lease_or_completion(run_id, owner, finished, now)
        wait, created = WaitPoint.objects.get_or_create(
            run_id=run_id,
            sequence=sequence,
            defaults={
                "kind": kind,
                "key": key,
                "event_id": event_id,
                "request": request or {},
                "deadline": deadline,
            },
        )
        if created:
            step, _ = Step.objects.update_or_create(
                run_id=run_id,
                sequence=sequence,
                defaults={
                    "name": key,
                    "kind": kind,
                    "status": StepStatus.WAITING,
                    "attempts": 1,
                    "started_at": now,
                },
            )
            if kind == WaitKind.EVENT:
                _deliver_stored_message(wait, now)
            if on_create is not None:
                on_create(wait)
        wait = WaitPoint.objects.select_for_update().get(pk=wait.pk)
        if wait.is_open:
            transition(
                run_id,
                RunStatus.WAITING,
                frm=[RunStatus.RUNNING],
                where=Q(lease_owner=owner),
                lease_owner="",
                lease_expires_at=None,
                wake_at=None,
            )
            record_event(run_id, "run.waiting", wait_summary(wait))
    return wait, step


def wait_summary(wait: WaitPoint) -> dict:
    data = {"wait_id": str(wait.id), "kind": wait.kind, "key": wait.key, "deadline": wait.deadline}
    if wait.event_id:
        data["event_id"] = wait.event_id
    if wait.kind == WaitKind.INPUT:
        data["request_id"] = wait.event_id or str(wait.id)
        data.update({k: wait.request.get(k) for k in ("prompt", "metadata", "schema")})
    return data


def _deliver_stored_message(wait: WaitPoint, now: datetime) -> None:
    lock_event_id(wait.event_id)
    message = (
        EventMessage.objects.select_for_update()
        .filter(event_id=wait.event_id, consumed_at__isnull=True)
        .order_by("id")
        .first()
    )
    if message is None:
        return
    message.consumed_at, message.consumed_by = now, wait
    message.save(update_fields=["consumed_at", "consumed_by"])
    WaitPoint.objects.filter(pk=wait.pk).update(
        status=WaitStatus.RESOLVED, resolution=message.data, resolved_at=now
    )


def lock_event_id(event_id: str) -> None:
    """Serialise notify() and wait registration for one event id, so neither misses the other.

    On PostgreSQL a transaction-scoped advisory lock; SQLite's IMMEDIATE transactions already
    run one writer at a time.
    """
    connection = transaction.get_connection()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"hitl-event:{event_id}"])


def closed_wait(run_id: Any, sequence: int) -> WaitPoint | None:
    """The run's wait at ``sequence`` if it is closed (resolved, timed out or cancelled).

    A closed wait never opens again and its resolution is written with its status, so a plain
    read needs no lock: only an open wait can race a resolution (``wait_enter`` handles that).
    """
    wait = WaitPoint.objects.filter(run_id=run_id, sequence=sequence).first()
    return None if wait is None or wait.is_open else wait


def wait_outcome(wait: WaitPoint) -> dict:
    """What the workflow sees of a closed wait; also its step's recorded result."""
    from .registry import to_json

    return to_json(
        {
            "wait_id": str(wait.id),
            "status": wait.status,
            "data": wait.resolution,
            "resolved_by": wait.resolved_by_id,
            "resolved_at": wait.resolved_at,
        },
        what="wait resolution",
    )


def wait_resolve(
    wait_id: Any,
    *,
    status: str,
    resolution: Any = None,
    resolved_by: Any = None,
    event_type: str | None = None,
    event_data: dict | None = None,
) -> bool:
    """Close an open wait and wake its run. Returns False if the wait was no longer open.

    Must be called inside a transaction (the caller's change and this one commit together).
    """
    now = clock.now()
    wait = WaitPoint.objects.select_for_update().filter(pk=wait_id).first()
    if wait is None or not wait.is_open:
        return False
    wait.status, wait.resolution, wait.resolved_at = status, resolution, now
    wait.resolved_by = resolved_by
    wait.save(update_fields=["status", "resolution", "resolved_at", "resolved_by"])
    if event_type:
        record_event(wait.run_id, event_type, event_data or {})
    wake(wait.run_id, now)
    return True


def wake(run_id: Any, now: datetime) -> bool:
    """waiting -> pending and enqueue; a run that is running will see the change itself."""
    woke = transition(
        run_id,
        RunStatus.PENDING,
        frm=[RunStatus.WAITING],
        strict=False,
        wake_at=now,
        enqueued_at=now,
    )
    if woke:
        enqueue_advance(run_id)
    return woke


# --- the run as a whole ---------------------------------------------------------------------


def run_complete(run_id: Any, owner: str, result: Any, finished: Sequence[Finished] = ()) -> bool:
    now = clock.now()
    if finished and fastpath.available():
        return fastpath.complete_run(
            run_id, owner, completions=_completions(finished), result=result, now=now
        )
    with transaction.atomic():
        if finished:
            write_completion(run_id, owner, finished, now)
        done = transition(
            run_id,
            RunStatus.COMPLETED,
            frm=[RunStatus.RUNNING],
            where=Q(lease_owner=owner),
            strict=False,
            result=result,
            finished_at=now,
            lease_owner="",
            lease_expires_at=None,
        )
        if done:
            record_event(run_id, "run.finished", {"status": "completed", "result": result})
    return done


def run_fail(
    run_id: Any, owner: str | None, exc: BaseException, finished: Sequence[Finished] = ()
) -> bool:
    now = clock.now()
    details = describe_exception(exc)
    where = Q(lease_owner=owner) if owner else None
    with transaction.atomic():
        if finished and owner:
            write_completion(run_id, owner, finished, now)
        done = transition(
            run_id,
            RunStatus.FAILED,
            frm=[RunStatus.RUNNING, RunStatus.PENDING],
            where=where,
            strict=False,
            finished_at=now,
            lease_owner="",
            lease_expires_at=None,
            **details,
        )
        if done:
            record_event(
                run_id,
                "run.finished",
                {
                    "status": "failed",
                    "error": details["error"],
                    "error_type": details["error_type"],
                },
            )
    return done


def run_yield(run_id: Any, owner: str, finished: Sequence[Finished] = ()) -> None:
    """Give the run back to the queue (time budget used up); another task continues it."""
    now = clock.now()
    with transaction.atomic():
        if finished:
            write_completion(run_id, owner, finished, now)
        moved = transition(
            run_id,
            RunStatus.PENDING,
            frm=[RunStatus.RUNNING],
            where=Q(lease_owner=owner),
            strict=False,
            wake_at=now,
            enqueued_at=now,
            lease_owner="",
            lease_expires_at=None,
        )
        if moved:
            enqueue_advance(run_id)


def _ms(start: datetime | None, end: datetime) -> int | None:
    return int((end - start).total_seconds() * 1000) if start else None


__all__ = ["Finished", "LeaseLost", "StepKind"]
