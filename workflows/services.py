"""Writes from outside the engine: start, cancel, retry, notify, answer an input request.

Keyword-only, named ``<thing>_<verb>``; the admin, the API, the management commands and the
review page all call these and hold no rules of their own.
"""

import uuid
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction

from . import clock, fastpath, journal
from .errors import InvalidInput, NotSerializable, RunNotFound, WaitClosed, WaitNotFound
from .models import (
    EventMessage,
    RunEvent,
    RunStatus,
    Step,
    StepStatus,
    WaitKind,
    WaitPoint,
    WaitStatus,
    WorkflowRun,
)
from .outbox import record_event
from .queue import enqueue_advance
from .registry import registry, to_json
from .signals import run_cancelled
from .transitions import transition


def run_start(
    *,
    workflow_name: str,
    input: Any = None,
    idempotency_key: str | None = None,
    created_by: Any = None,
) -> tuple[WorkflowRun, bool]:
    """Start a run of the newest version of ``workflow_name``; returns ``(run, created)``.

    With an ``idempotency_key`` a second start returns the first run (``created`` False)
    instead of starting another. Unknown workflows and input the workflow's serializer rejects
    raise before anything is written.
    """
    definition = registry.get(workflow_name)
    data = definition.validate_input(input)
    if idempotency_key is not None:
        idempotency_key = _key(idempotency_key, "The idempotency key")
        existing = WorkflowRun.objects.filter(
            workflow_name=definition.name, idempotency_key=idempotency_key
        ).first()
        if existing is not None:
            return existing, False
    now = clock.now()
    run = WorkflowRun(
        workflow_name=definition.name,
        workflow_version=definition.version,
        input=data,
        idempotency_key=idempotency_key,
        created_by=created_by,
        wake_at=now,
        enqueued_at=now,
        # The run.started event below takes number 1 (no UPDATE of a row just inserted).
        event_seq=1,
    )
    started = {"workflow": run.workflow_name, "version": run.workflow_version}
    try:
        if fastpath.available():
            event = RunEvent(run=run, seq=1, type="run.started", data=started)
            fastpath.start_run(run, event)
        else:
            with transaction.atomic():
                run.save(force_insert=True)
                record_event(run.id, "run.started", started, seq=1)
        enqueue_advance(run.id)
    except IntegrityError:
        # Lost a race with a concurrent start under the same key: that run is the answer.
        existing = WorkflowRun.objects.filter(
            workflow_name=definition.name, idempotency_key=idempotency_key
        ).first()
        if idempotency_key is None or existing is None:
            raise
        return existing, False
    return run, True


def run_cancel(*, run_id: Any, reason: str = "", cancelled_by: Any = None) -> WorkflowRun:
    """Cancel a pending, running or waiting run. A cancelled run never executes another step:
    a worker inside a step finds its lease gone before it can record or start the next one."""
    run_id = run_get(run_id).pk
    now = clock.now()
    with transaction.atomic():
        transition(
            run_id,
            RunStatus.CANCELLED,
            action="cancel",
            finished_at=now,
            lease_owner="",
            lease_expires_at=None,
            wake_at=None,
            error=reason or "Cancelled.",
            error_type="Cancelled",
        )
        open_waits = list(
            WaitPoint.objects.select_for_update()
            .filter(run_id=run_id, status=WaitStatus.OPEN)
            .values_list("pk", flat=True)
        )
        WaitPoint.objects.filter(pk__in=open_waits).update(
            status=WaitStatus.CANCELLED, resolved_at=now, resolved_by=cancelled_by
        )
        record_event(
            run_id,
            "run.finished",
            {
                "status": "cancelled",
                "reason": reason,
                "by": getattr(cancelled_by, "username", None),
            },
        )
        run_cancelled.send(sender=WorkflowRun, run_id=run_id, wait_ids=open_waits)
    return WorkflowRun.objects.get(pk=run_id)


def run_retry(*, run_id: Any, retried_by: Any = None) -> WorkflowRun:
    """Resume a failed run from its failed step: completed steps are not run again.

    If the run failed in a step (its last recorded call), that step gets fresh attempts;
    otherwise (e.g. an exception in the workflow body, fixed by a deploy) the replay simply
    continues after the last recorded call.
    """
    run_id = run_get(run_id).pk
    now = clock.now()
    with transaction.atomic():
        transition(
            run_id,
            RunStatus.PENDING,
            frm=[RunStatus.FAILED],
            action="retry",
            wake_at=now,
            enqueued_at=now,
            finished_at=None,
            error="",
            error_type="",
            traceback="",
            recovery_count=0,
        )
        last = Step.objects.filter(run_id=run_id).order_by("-sequence").first()
        if last is not None and last.status in (StepStatus.FAILED, StepStatus.RUNNING):
            last.status, last.attempts, last.next_attempt_at = StepStatus.RETRYING, 0, None
            last.save(update_fields=["status", "attempts", "next_attempt_at"])
        record_event(
            run_id,
            "run.retried",
            {"from_step": last.name if last else None, "by": getattr(retried_by, "username", None)},
        )
        enqueue_advance(run_id)
    return WorkflowRun.objects.get(pk=run_id)


@dataclass(frozen=True)
class NotifyResult:
    event_id: str
    resumed: int
    stored: bool

    def as_dict(self) -> dict:
        return {"event_id": self.event_id, "resumed": self.resumed, "stored": self.stored}


def event_notify(*, event_id: str, data: Any = None) -> NotifyResult:
    """Resolve every open ``wait_for_event`` on ``event_id`` with ``data``.

    If nobody waits yet, the event is stored (``stored`` True, ``resumed`` 0) and delivered to
    the first wait for that id that is registered later.
    """
    event_id = _key(event_id or "", "event_id")
    data = to_json(data, what="event data")
    with transaction.atomic():
        journal.lock_event_id(event_id)
        waits = list(
            WaitPoint.objects.select_for_update()
            .filter(event_id=event_id, kind=WaitKind.EVENT, status=WaitStatus.OPEN)
            .values_list("pk", flat=True)
        )
        resumed = 0
        for wait_id in waits:
            resumed += journal.wait_resolve(
                wait_id,
                status=WaitStatus.RESOLVED,
                resolution=data,
                event_type="event.received",
                event_data={"event_id": event_id, "data": data},
            )
        if not waits:
            EventMessage.objects.create(event_id=event_id, data=data)
    return NotifyResult(event_id=event_id, resumed=resumed, stored=not waits)


def input_answer(*, request_id: Any, data: Any, answered_by: Any = None) -> WaitPoint:
    """Answer an open input request with ``data``, validated against its JSON Schema.

    ``request_id`` is the wait's id or the ``request_id`` the workflow gave it.
    """
    from jsonschema import Draft202012Validator

    wait = input_request_get(request_id)
    schema = wait.request.get("schema")
    try:
        data = to_json(data, what="input answer")
    except NotSerializable as exc:
        # Bad input like any other (a form's JSON field reads NaN): a 400 with the form.
        raise InvalidInput(str(exc), errors={"data": [str(exc)]}) from exc
    if schema:
        errors = sorted(Draft202012Validator(schema).iter_errors(data), key=lambda e: e.path)
        if errors:
            raise InvalidInput(
                "The answer does not match the request's schema.",
                errors={_error_field(e): [e.message] for e in errors},
            )
    with transaction.atomic():
        answered = journal.wait_resolve(
            wait.pk,
            status=WaitStatus.RESOLVED,
            resolution=data,
            resolved_by=answered_by,
            event_type="input.resolved",
            event_data={
                "request_id": str(request_id),
                "key": wait.key,
                "data": data,
                "by": getattr(answered_by, "username", None),
            },
        )
    if not answered:
        raise WaitClosed(f"Input request {request_id} was already answered or closed.")
    return WaitPoint.objects.get(pk=wait.pk)


def input_request_get(request_id: Any) -> WaitPoint:
    if "\x00" in str(request_id):
        raise WaitNotFound(f"No input request with id {str(request_id)!r}.")
    query = WaitPoint.objects.filter(kind=WaitKind.INPUT)
    wait = query.filter(event_id=str(request_id), status=WaitStatus.OPEN).first()
    if wait is None and _as_uuid(request_id) is not None:
        wait = query.filter(pk=_as_uuid(request_id)).first()
    if wait is None:
        raise WaitNotFound(f"No input request with id {request_id}.")
    if not wait.is_open:
        raise WaitClosed(f"Input request {request_id} was already answered or closed.")
    return wait


def _key(value: Any, what: str) -> str:
    """A caller's key (idempotency key, event id) stripped, or InvalidInput naming the problem.

    The API's serializers refuse these already; the Python API and the management commands
    reach the services directly, where PostgreSQL would refuse a NUL with a driver error.
    """
    key = str(value).strip()
    if not key or len(key) > 255:
        raise InvalidInput(f"{what} must be 1 to 255 characters.")
    if "\x00" in key:
        raise InvalidInput(f"{what} contains a NUL character (\\u0000).")
    return key


def _error_field(error: Any) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "non_field_errors"


def run_get(run_id: Any) -> WorkflowRun:
    run = WorkflowRun.objects.filter(pk=_as_uuid(run_id)).first() if _as_uuid(run_id) else None
    if run is None:
        raise RunNotFound(f"No workflow run with id {run_id}.")
    return run


def _as_uuid(value: Any) -> uuid.UUID | None:
    try:
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
    except ValueError:
        return None
