"""Handing run advances to django-q2, always after the transaction that made them due commits."""

import logging
import os
import threading
from typing import Any

from django.db import transaction

log = logging.getLogger(__name__)

ADVANCE_TASK = "workflows.tasks.advance_run"


def enqueue_advance(run_id: Any) -> None:
    """Ask a worker to advance the run once the current transaction commits.

    A lost enqueue (broker down, process killed right after commit) costs latency, not the run:
    the sweeper enqueues pending runs again after ``HITL_REQUEUE_AFTER_SECONDS``.
    """
    run_id = str(run_id)
    transaction.on_commit(lambda: _send(run_id))


def _send(run_id: str) -> None:
    from django_q.tasks import async_task

    try:
        async_task(
            ADVANCE_TASK,
            run_id,
            task_name=f"advance-{run_id}",
            group="hitl-advance",
            broker=_broker(),
        )
    except Exception:  # broker unreachable: the sweeper re-sends; never fail the caller
        _reset_broker()
        log.warning(
            "Could not enqueue advance of run %s; the sweeper will retry", run_id, exc_info=True
        )


# django-q2 builds a new broker, and with Redis a new connection pool and TCP connection, for
# every async_task() unless it is given one. One per process (a forked worker makes its own);
# redis-py's client is thread-safe. Dropped after a failure so the next send starts afresh.
_brokers: dict[int, Any] = {}
_brokers_lock = threading.Lock()


def _broker() -> Any:
    from django_q.brokers import get_broker

    pid = os.getpid()
    with _brokers_lock:
        broker = _brokers.get(pid)
        if broker is None:
            _brokers.clear()
            broker = _brokers[pid] = get_broker()
        return broker


def _reset_broker() -> None:
    with _brokers_lock:
        _brokers.clear()
