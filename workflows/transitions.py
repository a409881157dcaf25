"""The one place where a run's status changes.

Every change is a conditional UPDATE (``WHERE status IN <allowed sources>``) whose row count
tells whether it happened, so two processes can never both move a run out of the same state.
"""

from collections.abc import Iterable
from typing import Any

from django.db.models import Q

from . import clock
from .errors import InvalidTransition, RunNotFound
from .models import RunStatus, WorkflowRun

S = RunStatus

ALLOWED: dict[str, frozenset[str]] = {
    S.PENDING: frozenset({S.RUNNING, S.CANCELLED, S.FAILED}),
    # running -> running: a run whose worker died (lease expired) is reclaimed by another one.
    # running -> pending: a step waits for its retry, or the advance used up its time budget.
    S.RUNNING: frozenset({S.RUNNING, S.PENDING, S.WAITING, S.COMPLETED, S.FAILED, S.CANCELLED}),
    S.WAITING: frozenset({S.PENDING, S.CANCELLED, S.FAILED}),
    # failed -> pending: retry from the failed step.
    S.FAILED: frozenset({S.PENDING}),
    S.COMPLETED: frozenset(),
    S.CANCELLED: frozenset(),
}


def sources_for(target: str) -> frozenset[str]:
    return frozenset(src for src, targets in ALLOWED.items() if target in targets)


def _sources(to: str, frm: Iterable[str] | None) -> frozenset[str]:
    legal = sources_for(to)
    sources = legal if frm is None else legal & frozenset(frm)
    if frm is not None and not sources:
        raise ValueError(f"No legal transition from {sorted(frm)} to {to}.")
    return sources


def status_guard(to: str, frm: Iterable[str] | None = None) -> str:
    """``status IN (...)`` for raw SQL moving a run to ``to`` (``workflows.fastpath``): the
    same legality check as ``transition``. Statuses are fixed identifiers, safe to inline."""
    return "status IN ({})".format(", ".join(f"'{s}'" for s in sorted(_sources(to, frm))))


def transition(
    run_id: Any,
    to: str,
    *,
    frm: Iterable[str] | None = None,
    where: Q | None = None,
    strict: bool = True,
    action: str | None = None,
    **fields: Any,
) -> bool:
    """Move run ``run_id`` to status ``to`` from one of ``frm`` (default: every legal source).

    ``where`` adds conditions (lease owner, lease expiry, wake time). Returns whether the run
    moved. With ``strict`` a run that did not move raises ``InvalidTransition`` naming its
    current status (or ``RunNotFound``).
    """
    sources = _sources(to, frm)
    query = WorkflowRun.objects.filter(pk=run_id, status__in=sources)
    if where is not None:
        query = query.filter(where)
    updated = query.update(status=to, updated_at=clock.now(), **fields)
    if updated or not strict:
        return bool(updated)
    current = WorkflowRun.objects.filter(pk=run_id).values_list("status", flat=True).first()
    if current is None:
        raise RunNotFound(f"No workflow run with id {run_id}.")
    raise InvalidTransition(run_id, current, to, action)
