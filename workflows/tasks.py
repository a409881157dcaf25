"""django-q2 entry points. They take ids, never model instances."""

import logging
import threading
import time

from django.conf import settings
from django.db import close_old_connections

log = logging.getLogger(__name__)


def advance_run(run_id: str) -> str:
    from .engine import advance

    return advance(run_id)


def sweep() -> dict:
    from .sweeper import sweep as run_sweep

    return vars(run_sweep())


SWEEP_SCHEDULE_NAME = "hitl-sweeper"


def ensure_sweep_schedule() -> None:
    """Register the sweeper as a django-q2 schedule (idempotent; run by `migrate`)."""
    from django_q.models import Schedule

    Schedule.objects.update_or_create(
        name=SWEEP_SCHEDULE_NAME,
        defaults={
            "func": "workflows.tasks.sweep",
            "schedule_type": Schedule.MINUTES,
            "minutes": 1,
            "repeats": -1,
        },
    )


# --- the in-worker timer ------------------------------------------------------------------
# django-q2's scheduler looks at schedules about every 30 s, too coarse for a 5 s sleep or a
# 1 s retry backoff. Each worker process therefore runs a small thread that sweeps as soon as
# the next timer is due (checking at least every HITL_TIMER_TICK_SECONDS).

_timer_started = False
_timer_lock = threading.Lock()


def start_timer_thread(**_kwargs) -> None:
    global _timer_started
    tick = settings.HITL_TIMER_TICK_SECONDS
    if tick <= 0:
        return
    with _timer_lock:
        if _timer_started:
            return
        _timer_started = True
    threading.Thread(target=_timer_loop, args=(tick,), name="hitl-timer", daemon=True).start()


def _timer_loop(tick: float) -> None:
    from . import clock
    from .sweeper import next_due
    from .sweeper import sweep as run_sweep

    while True:
        try:
            close_old_connections()
            report = run_sweep()
            if report.total:
                log.debug("timer sweep: %s", report)
            due = next_due(clock.now())
            wait = tick if due is None else (due - clock.now()).total_seconds()
            time.sleep(min(tick, max(0.05, wait)))
        except Exception:
            log.exception("Timer sweep failed; retrying")
            time.sleep(tick)
