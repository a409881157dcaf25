"""Advancing a run: claim it, replay its workflow function, record how far it got."""

import logging
import os
import socket
import uuid
from typing import Any

from django.db import InterfaceError, OperationalError, connection, transaction
from django.db.models import F, Q, Value
from django.db.models.functions import Coalesce

from . import clock, fastpath, journal
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

    PostgreSQL: ``SELECT ... FOR UPDATE SKIP LOCKED`` feeding the ``UPDATE`` in one statement
    (``fastpath.claim``), so a second worker delivered the same task moves on at once instead
    of queueing behind the first. SQLite (where select_for_update is a no-op): the conditional
    UPDATE in ``transition`` is the guard; its row count decides.

    The run returned carries ``advance_count`` after the claim; ``status`` and
    ``recovery_count`` as before it.
    """
    now = clock.now()
    if fastpath.available():
        run = fastpath.claim(
            run_id,
            owner,
            claimable=claimable,
            now=now,
            lease_until=journal.lease_until(now),
        )
    else:
        run = _claim_orm(run_id, owner, now)
    if run is None:
        return None
    # A running run was reclaimed from a worker whose lease expired.
    if run.status == RunStatus.RUNNING and not _recover(run, owner):
        return None
    run.status = RunStatus.RUNNING
    return run


def _claim_orm(run_id: Any, owner: str, now) -> WorkflowRun | None:
    with transaction.atomic():
        run = WorkflowRun.objects.filter(claimable(now), pk=run_id).first()
        if run is None:
            return None
        fields: dict[str, Any] = {
            "lease_owner": owner,
            "lease_expires_at": journal.lease_until(now),
            "wake_at": None,
            "enqueued_at": None,
            "advance_count": F("advance_count") + 1,
            "started_at": Coalesce(F("started_at"), Value(now)),
        }
        reclaiming = run.status == RunStatus.RUNNING
        if reclaiming:
            fields["recovery_count"] = F("recovery_count") + 1
        if not transition(
            run_id,
            RunStatus.RUNNING,
            frm=[run.status],
            where=claimable(now),
            strict=False,
            **fields,
        ):
            return None
    run.advance_count += 1
    return run


def _claim_on_live_connection(run_id: Any, owner: str) -> WorkflowRun | None:
    """``claim`` without Django's per-task connection health check.

    With ``CONN_HEALTH_CHECKS`` Django pings a persistent connection (``SELECT 1``) before the
    first query of every task: one more round trip per advance than the claim itself. The
    claim is that first query and is safe to repeat (it changes nothing unless it matches), so
    instead of pinging first, a connection the claim finds dead (database restarted, idle
    connection cut) is replaced and the claim made once more.
    """
    connection.health_check_done = True
    try:
        return claim(run_id, owner)
    except (OperationalError, InterfaceError):
        log.info("Database connection lost before claiming run %s; reconnecting", run_id)
        connection.close()
        return claim(run_id, owner)


def _recover(run: WorkflowRun, owner: str) -> bool:
    """The run was reclaimed: count it, or give up on it past ``HITL_MAX_RECOVERIES``."""
    from django.conf import settings

    if run.recovery_count >= settings.HITL_MAX_RECOVERIES:
        journal.run_fail(
            run.id,
            owner,
            WorkflowError(
                f"The worker advancing this run died {run.recovery_count + 1} times "
                f"(limit HITL_MAX_RECOVERIES={settings.HITL_MAX_RECOVERIES}); giving up."
            ),
        )
        return False
    with transaction.atomic():
        journal.record_event(run.id, "run.recovered", {"recovery": run.recovery_count + 1})
    return True


def advance(run_id: Any) -> str:
    """Advance the run as far as it goes. Returns what happened, for logs and tests:
    ``skipped`` (not ours now), ``waiting``, ``retry``, ``yielded``, ``completed``, ``failed``
    or ``lost`` (cancelled or taken over meanwhile)."""
    owner = worker_id()
    run = _claim_on_live_connection(run_id, owner)
    if run is None:
        return "skipped"
    try:
        definition = registry.get(run.workflow_name, run.workflow_version)
    except WorkflowError as exc:
        journal.run_fail(run.id, owner, exc)
        return "failed"

    # A run advanced for the first time has no journal yet: no need to read it.
    first = run.advance_count == 1
    steps = {} if first else {step.sequence: step for step in run.steps.all()}
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
    """Call the workflow function and write how the advance ended (with ``ctx.pending``, the
    completions held back, in the same transaction)."""
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
        journal.run_yield(run.id, owner, finished=ctx.pending)
        return "yielded"
    except (OperationalError, InterfaceError):
        raise  # not the workflow's failure: advance() leaves the run to be recovered
    except Exception as exc:
        # A replay error wins over whatever the workflow did with it afterwards.
        error = ctx.fatal_error or exc
        log.warning("Run %s failed: %s", run.id, error)
        failed = journal.run_fail(run.id, owner, error, finished=ctx.pending)
        return "failed" if failed else "lost"
    done = journal.run_complete(run.id, owner, result, finished=ctx.pending)
    return "completed" if done else "lost"
