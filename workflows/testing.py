"""Helpers for testing workflows without a worker cluster: a synchronous, in-process worker.

    run = start("refund", {...})
    run_until_idle()            # advances every due run until all wait or finish
    notify("approval-1", {...})
    run_until_idle()

Combine with ``workflows.clock.travel(timedelta(...))`` to let timers and deadlines pass.
The code that runs is the production engine; only the django-q2 transport is left out.
"""

from .clock import now
from .engine import advance, claimable
from .models import WorkflowRun
from .sweeper import fire_due_waits


def run_until_idle(max_rounds: int = 200) -> list[str]:
    """Fire due timers and advance due runs until nothing is due; returns the outcomes."""
    outcomes: list[str] = []
    for _ in range(max_rounds):
        fire_due_waits(now())
        due = list(WorkflowRun.objects.filter(claimable(now())).values_list("pk", flat=True))
        if not due:
            return outcomes
        outcomes.extend(advance(run_id) for run_id in due)
    raise RuntimeError(f"Runs were still due after {max_rounds} rounds: {outcomes[-10:]}")
