"""Advancing a run: claim it, replay its workflow function, record how far it got."""

import logging
import os
import socket
import uuid
from typing import Any

from django.db import InterfaceError, OperationalError, transaction
from django.db.models import F, Q, Value
from django.db.models.functions import Coalesce

from . import clock, journal
from .context import Context, RetryLater, Suspend, YieldRun
from .errors import WorkflowError
from .models import RunStatus, WorkflowRun
from .registry import registry, to_json
from .transitions import transition

log = logging.getLogger(__name__)


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def claimable(now) -> Q:
    """A pending run whose wake time has come, or a running run whose worker's lease expired."""
    due = Q(status=RunStatus.PENDING) & (Q(wake_at__isnull=True) | Q(wake_at__lte=now))
    abandoned = Q(status=RunStatus.RUNNING, lease_expires_at__lt=now)
    return due | abandoned


def claim(run_id: Any, owner: str) -> WorkflowRun | None:
    """Take the run for this worker, or return None if it is not ours to advance now.

    PostgreSQL: ``SELECT ... FOR UPDATE SKIP LOCKED``, so a second worker delivered the same
    task moves on at once instead of queueing behind the first. SQLite (where select_for_update
    is a no-op): the conditional UPDATE in ``transition`` is the guard; its row count decides.
    """
    from django.conf import settings

    now = clock.now()
    with transaction.atomic():
        query = WorkflowRun.objects.filter(claimable(now), pk=run_id)
        if transaction.get_connection().features.has_select_for_update_skip_locked:
            query = query.select_for_update(skip_locked=True)
        run = query.first()
        if run is None:
            return None
        reclaiming = run.status == RunStatus.RUNNING
        if reclaiming and run.recovery_count >= settings.HITL_MAX_RECOVERIES:
            journal.run_fail(
                run_id,
                None,
                WorkflowError(
                    f"The worker advancing this run died {run.recovery_count + 1} times "
                    f"(limit HITL_MAX_RECOVERIES={settings.HITL_MAX_RECOVERIES}); giving up."
                ),
            )
            return None
        fields: dict[str, Any] = {
            "lease_owner": owner,
            "lease_expires_at": journal.lease_until(now),
            "wake_at": None,
            "enqueued_at": None,
            "advance_count": F("advance_count") + 1,
            "started_at": Coalesce(F("started_at"), Value(now)),
        }
        if reclaiming:
            fields["recovery_count"] = F("recovery_count") + 1
        frm = [RunStatus.RUNNING] if reclaiming else [RunStatus.PENDING]
        if not transition(
            run_id, RunStatus.RUNNING, frm=frm, where=claimable(now), strict=False, **fields
        ):
            return None
        if reclaiming:
            journal.record_event(run_id, "run.recovered", {"recovery": run.recovery_count + 1})
    # The row as read before the UPDATE: only the columns the replay needs are used.
    run.status = RunStatus.RUNNING
    return run


def advance(run_id: Any) -> str:
    """Advance the run as far as it goes. Returns what happened, for logs and tests:
    ``skipped`` (not ours now), ``waiting``, ``retry``, ``yielded``, ``completed``, ``failed``
    or ``lost`` (cancelled or taken over meanwhile)."""
    owner = worker_id()
    run = claim(run_id, owner)
    if run is None:
        return "skipped"
    try:
        definition = registry.get(run.workflow_name, run.workflow_version)
    except WorkflowError as exc:
        journal.run_fail(run.id, owner, exc)
        return "failed"

    steps = {step.sequence: step for step in run.steps.all()}
    ctx = Context(run, steps, owner)
    try:
        return _replay(definition.fn, ctx, run, owner)
    except journal.LeaseLost:
        log.info("Run %s was cancelled or taken over while this worker advanced it", run.id)
        return "lost"
    except (OperationalError, InterfaceError):
        # The database went away under us (restart, failover, terminated connection). That is
        # not the workflow's fault: leave the run alone; its lease expires and the sweeper hands
        # it to a worker with a working connection.
        log.warning(
            "Database error while advancing run %s; it will be recovered", run.id, exc_info=True
        )
        return "db-error"


def _replay(fn: Any, ctx: Context, run: WorkflowRun, owner: str) -> str:
    """Call the workflow function and write how the advance ended (with ``ctx.finished``, the
    last step's completion, in the same transaction)."""
    try:
        result = fn(ctx, run.input)
        if ctx.fatal_error is not None:
            raise ctx.fatal_error
        result = to_json(result, what="workflow result")
    except Suspend:
        return "waiting"
    except RetryLater:
        ctx.flush()
        return "retry"
    except YieldRun:
        journal.run_yield(run.id, owner, finished=ctx.finished)
        return "yielded"
    except (journal.LeaseLost, OperationalError, InterfaceError):
        raise
    except Exception as exc:
        # A replay error wins over whatever the workflow did with it afterwards.
        error = ctx.fatal_error or exc
        log.warning("Run %s failed: %s", run.id, error)
        failed = journal.run_fail(run.id, owner, error, finished=ctx.finished)
        return "failed" if failed else "lost"
    done = journal.run_complete(run.id, owner, result, finished=ctx.finished)
    return "completed" if done else "lost"
