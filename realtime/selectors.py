"""Reads behind the consumers: access checks and the catch-up queries."""

import uuid
from enum import Enum
from typing import Any

from workflows.models import RunEvent, WorkflowRun

from .conf import setting
from .messages import EVENT_FIELDS
from .permissions import visibility


class Access(Enum):
    OK = "ok"
    MISSING = "missing"
    FORBIDDEN = "forbidden"


def run_access(user: Any, run_id: uuid.UUID) -> tuple[Access, int]:
    """Whether ``user`` may watch the run, and the run's last event ``seq`` when asked: the
    events up to it committed before the answer (a run's seq moves with its row), so they
    need no second check."""
    run = WorkflowRun.objects.filter(pk=run_id).only("pk", "created_by", "event_seq").first()
    if run is None:
        return Access.MISSING, 0
    access = Access.OK if visibility().may_watch_run(user, run) else Access.FORBIDDEN
    return access, run.event_seq


def run_events_after(run_id: Any, seq: int) -> list[dict[str, Any]]:
    """The next page of the run's events with a sequence above ``seq``, in order."""
    page = setting("HITL_REALTIME_CATCH_UP_PAGE")
    query = RunEvent.objects.filter(run_id=run_id, seq__gt=seq).order_by("seq")
    return list(query.values(*EVENT_FIELDS)[:page])


def approval_events_after(user: Any, event_id: int) -> list[dict[str, Any]]:
    """The next page of approval events ``user`` may see with an id above ``event_id``."""
    page = setting("HITL_REALTIME_CATCH_UP_PAGE")
    query = visibility().approval_events(user).filter(pk__gt=event_id).order_by("pk")
    return list(query.values(*EVENT_FIELDS)[:page])


def approval_event_visible(user: Any, event_id: int) -> bool:
    vis = visibility()
    return vis.sees_all_approvals(user) or vis.approval_events(user).filter(pk=event_id).exists()


def events_by_id(event_ids: list[int]) -> list[dict[str, Any]]:
    return list(RunEvent.objects.filter(pk__in=event_ids).order_by("pk").values(*EVENT_FIELDS))


def events_after_id(event_id: int, limit: int) -> list[dict[str, Any]]:
    return list(
        RunEvent.objects.filter(pk__gt=event_id).order_by("pk").values(*EVENT_FIELDS)[:limit]
    )


def last_event_id() -> int:
    return RunEvent.objects.order_by("-pk").values_list("pk", flat=True).first() or 0


def existing_event_ids(low: int, high: int) -> set[int]:
    return set(RunEvent.objects.filter(pk__gt=low, pk__lte=high).values_list("pk", flat=True))
