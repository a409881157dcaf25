"""Run events: written in the same transaction as the change they describe (a transactional
outbox), published after commit through the ``run_events_committed`` signal."""

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.db import connection, transaction

from . import clock
from .models import RunEvent, WorkflowRun
from .registry import to_json
from .signals import run_events_committed


def next_event_seq(
    run_id: Any, *, owner: str | None = None, lease_until: datetime | None = None
) -> int | None:
    """Take the run's next event sequence number (and, with ``owner``, renew its lease).

    One ``UPDATE ... RETURNING`` (PostgreSQL; SQLite 3.35+). It holds the run's row lock until
    commit, so the numbers of one run are handed out one at a time even across processes. With
    ``owner`` it matches only while that worker still holds the running run: None means it
    does not (or the run does not exist).
    """
    table = WorkflowRun._meta.db_table
    sql = f"UPDATE {table} SET event_seq = event_seq + 1"
    params: list[Any] = []
    if owner is not None:
        sql += ", lease_expires_at = %s, updated_at = %s"
        params += [lease_until, clock.now()]
    sql += " WHERE id = %s"
    params.append(WorkflowRun._meta.pk.get_db_prep_value(run_id, connection))
    if owner is not None:
        sql += " AND status = 'running' AND lease_owner = %s"
        params.append(owner)
    with connection.cursor() as cursor:
        cursor.execute(sql + " RETURNING event_seq", params)
        row = cursor.fetchone()
    return row[0] if row else None


def record_event(
    run_id: Any,
    type: str,
    data: dict | None = None,
    *,
    seq: int | None = None,
) -> RunEvent:
    """Append an event to the run's stream. Must be called inside the change's transaction.

    ``seq``: a number this transaction already took with ``next_event_seq``.
    """
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("record_event() must run inside the transaction of its change.")
    if seq is None:
        seq = next_event_seq(run_id)
        if seq is None:
            raise RuntimeError(f"Run {run_id} does not exist.")
    event = RunEvent.objects.create(
        run_id=run_id, seq=seq, type=type, data=to_json(data or {}, what="event data")
    )
    publish_after_commit([event])
    return event


def publish_after_commit(events: Iterable[RunEvent]) -> None:
    # The rows travel with the signal so listeners need not read back what was just written.
    events = list(events)
    transaction.on_commit(
        lambda: run_events_committed.send(
            sender=RunEvent, event_ids=[e.pk for e in events], events=events
        ),
        robust=True,
    )
