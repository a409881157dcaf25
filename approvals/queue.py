"""Keeps ``QueueEntry`` and ``ApprovalRequest.due_at``: whom each pending request waits for,
and until when, as rows and a column the queues can read from indexes.

A pending request waits for the users and groups named on its open stage and for the user who
claimed that stage; ``due_at`` is that stage's deadline. ``rebuild`` derives both from exactly
those rows; the services call it after every change of them (a stage opening, a claim or its
release, a reassignment or delegation, an escalation, the request closing), under the
request's lock. Nothing else writes them. Group membership is read when a queue is read, so
joining or leaving a group needs nothing here.
"""

from collections.abc import Iterable
from typing import Any

from .batching import batches
from .models import ApprovalRequest, ApprovalStage, ApprovalStatus, QueueEntry, StageStatus


def rebuild(request_ids: Iterable[Any]) -> None:
    """Replace the queue entries and ``due_at`` of these requests with what their rows say."""
    for batch in batches(request_ids):
        _rebuild(batch)


def _rebuild(ids: list[Any]) -> None:
    waiting: dict[Any, Any] = {}  # open stage -> its request
    entries: list[QueueEntry] = []
    due: dict[Any, Any] = {}  # request -> the due_at it must have, where it has another one
    rows = ApprovalRequest.objects.filter(pk__in=ids).values_list(
        "pk",
        "status",
        "due_at",
        "current_stage_id",
        "current_stage__status",
        "current_stage__deadline",
        "current_stage__claimed_by_id",
    )
    for pk, status, due_at, stage_id, stage_status, deadline, claimer in rows:
        is_waiting = status == ApprovalStatus.PENDING and stage_status == StageStatus.OPEN
        if is_waiting:
            waiting[stage_id] = pk
            if claimer is not None:
                entries.append(QueueEntry(request_id=pk, user_id=claimer, claimed=True))
        wanted = deadline if is_waiting else None
        if wanted != due_at:
            due[pk] = wanted
    if waiting:
        through = ApprovalStage.users.through.objects.filter(approvalstage__in=list(waiting))
        entries += [
            QueueEntry(request_id=waiting[stage], user_id=user)
            for stage, user in through.values_list("approvalstage_id", "user_id")
        ]
        through = ApprovalStage.groups.through.objects.filter(approvalstage__in=list(waiting))
        entries += [
            QueueEntry(request_id=waiting[stage], group_id=group)
            for stage, group in through.values_list("approvalstage_id", "group_id")
        ]
    QueueEntry.objects.filter(request__in=ids).delete()
    QueueEntry.objects.bulk_create(entries)
    by_value: dict[Any, list[Any]] = {}
    for pk, due_at in due.items():
        by_value.setdefault(due_at, []).append(pk)
    for due_at, pks in by_value.items():  # one UPDATE per deadline (one, for one request)
        ApprovalRequest.objects.filter(pk__in=pks).update(due_at=due_at)
