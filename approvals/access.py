"""Keeps ``ApprovalAccess``: who is involved with each request, as rows readers can count.

A user or group is involved with a request when named on one of its stages (as the stage is
now: a reassignment or an escalation takes the previous assignees off), when the user acted on
it (any audit record), requested it, or started its run. ``rebuild`` derives a request's rows
from exactly those facts; the services call it whenever a stage's assignees change (creation,
reassignment, delegation, escalation), under the request's lock, and ``add_actor`` for every
audit record. Nothing else writes the table.
"""

from collections.abc import Iterable
from typing import Any

from .batching import batches
from .models import ApprovalAccess, ApprovalRequest, ApprovalStage, DecisionRecord


def rebuild(request_ids: Iterable[Any]) -> None:
    """Replace the access rows of these requests with what their rows say now."""
    for batch in batches(request_ids):
        _rebuild(batch)


def _rebuild(ids: list[Any]) -> None:
    runs: dict[Any, Any] = {}
    users: set[tuple[Any, Any]] = set()
    for pk, run_id, requester_id, starter_id in ApprovalRequest.objects.filter(
        pk__in=ids
    ).values_list("pk", "run_id", "requester_id", "run__created_by_id"):
        runs[pk] = run_id
        users.update((pk, user) for user in (requester_id, starter_id) if user is not None)
    users.update(
        ApprovalStage.users.through.objects.filter(approvalstage__request__in=ids).values_list(
            "approvalstage__request_id", "user_id"
        )
    )
    users.update(
        DecisionRecord.objects.filter(request__in=ids, actor__isnull=False).values_list(
            "request_id", "actor_id"
        )
    )
    groups = set(
        ApprovalStage.groups.through.objects.filter(approvalstage__request__in=ids).values_list(
            "approvalstage__request_id", "group_id"
        )
    )
    ApprovalAccess.objects.filter(request__in=ids).delete()
    ApprovalAccess.objects.bulk_create(
        [ApprovalAccess(request_id=pk, run_id=runs[pk], user_id=user) for pk, user in users]
        + [ApprovalAccess(request_id=pk, run_id=runs[pk], group_id=group) for pk, group in groups]
    )


def add_actor(request: ApprovalRequest, actor: Any) -> None:
    """``actor`` acted on ``request``: they may read it from now on (one statement, nothing if
    they already may)."""
    if actor is None:
        return
    ApprovalAccess.objects.bulk_create(
        [ApprovalAccess(request_id=request.pk, run_id=request.run_id, user_id=actor.pk)],
        ignore_conflicts=True,
    )
