"""The JSON a client receives, and the channel-layer messages that carry it.

Every frame sent to a client has the same shape: ``{"type", "seq", "run", "data", "ts"}``.
Run events carry their per-run ``seq``; presence frames have ``seq`` null (they are not part of
the event stream and are never replayed).
"""

from datetime import datetime
from typing import Any

from django.utils import timezone

# The columns of RunEvent a message is built from (selectors fetch exactly these).
EVENT_FIELDS = ("id", "run_id", "seq", "type", "data", "created_at")


def event_frame(row: dict[str, Any]) -> dict[str, Any]:
    """A run event as the client sees it on a run stream."""
    return {
        "type": row["type"],
        "seq": row["seq"],
        "run": str(row["run_id"]),
        "data": row["data"],
        "ts": _iso(row["created_at"]),
    }


def approval_frame(event_id: int, frame: dict[str, Any]) -> dict[str, Any]:
    """On the approvals stream the cursor is the event's primary key: ``seq`` is the id (one
    increasing sequence across all runs) and the run's own sequence moves to ``run_seq``."""
    return {**frame, "seq": event_id, "run_seq": frame["seq"]}


def group_message(row: dict[str, Any]) -> dict[str, Any]:
    """The channel-layer message for a committed event (handled by ``run_event``)."""
    return {"type": "run.event", "id": row["id"], "event": event_frame(row)}


def batch_message(messages: list[dict[str, Any]]) -> dict[str, Any]:
    """One ``group_message``, or several of one group in order (handled by ``run_events``)."""
    if len(messages) == 1:
        return messages[0]
    return {"type": "run.events", "events": messages}


def presence_frame(kind: str, run_id: Any, conn: str, user: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": kind,
        "seq": None,
        "run": str(run_id),
        "data": {"conn": conn, "user": user},
        "ts": _iso(timezone.now()),
    }


def _iso(value: datetime | str) -> str:
    return value if isinstance(value, str) else value.isoformat()
