"""SIGKILL the worker cluster at random moments, many times, while runs are in flight.

Afterwards: no run lost, every run finished, every step's effect applied exactly once, no
step ran again after it was recorded (batched steps included), and every atomic step's write
committed exactly once.
Figures are printed (run with -s to see them) and written to var/reliability/.
"""

import random
import time

import pytest

import tests.reliability.flows  # noqa: F401  (registers "storm" in this process)
from tests.e2e.processes import Cluster, child_env, wait_until
from workflows import start
from workflows.models import RunStatus, Step, WorkflowRun

from .conftest import LARGE
from .figures import backend, record
from .ledger import Ledger

pytestmark = [pytest.mark.multiprocess, pytest.mark.django_db(transaction=True)]

RUNS, KILLS = (200, 50) if LARGE else (50, 20)
# Steps of a storm run with an effect on the ledger: a-d, and f (batched).
LEDGER_STEPS = 5


def test_sigkill_storm(ledger, tmp_path):
    rng = random.Random(20261121)
    env = child_env(HITL_WORKFLOW_MODULES="tests.reliability.flows")
    runs = [start("storm", {"n": n}).pk for n in range(RUNS)]
    began = time.monotonic()
    kills_in_step = 0
    for kill in range(KILLS):
        cluster = Cluster(env, tmp_path / f"cluster-{kill}.log")
        before = Step.objects.count()
        # Boot time varies with load: kill at a random moment *after* this cluster got to work.
        wait_until(
            lambda before=before: Step.objects.count() > before,
            timeout=60,
            interval=0.05,
            what=f"cluster {kill} to start a step",
        )
        time.sleep(rng.uniform(0.0, 0.6))
        kills_in_step += Step.objects.filter(status="running").exists()
        cluster.kill()
    killed_at = time.monotonic()

    final = Cluster(env, tmp_path / "final.log")
    try:
        wait_until(
            lambda: (
                WorkflowRun.objects.filter(pk__in=runs, status=RunStatus.COMPLETED).count() == RUNS
            ),
            timeout=240,
            what="every run to complete after the storm",
        )
    finally:
        final.stop()
    finished = time.monotonic()

    statuses = set(WorkflowRun.objects.filter(pk__in=runs).values_list("status", flat=True))
    assert statuses == {RunStatus.COMPLETED}
    book = Ledger.read()
    steps = list(
        Step.objects.filter(run_id__in=runs, kind="step")
        .exclude(name="e")
        .values_list("run_id", "sequence", "finished_at")
    )
    assert len(steps) == RUNS * LEDGER_STEPS
    atomic_keys = [
        f"{run_id}:{sequence}"
        for run_id, sequence in Step.objects.filter(run_id__in=runs, name="e").values_list(
            "run_id", "sequence"
        )
    ]
    assert len(atomic_keys) == RUNS
    assert sorted(book.atomic.elements()) == sorted(atomic_keys), "atomic writes not exactly once"
    rerun_after_record = []
    for run_id, sequence, finished_at in steps:
        key = f"{run_id}:{sequence}"
        assert book.effects[key] == 1, f"effect of {key} applied {book.effects[key]} times"
        late = [s for s in book.runs_of(key) if s > finished_at.timestamp() + 0.05]
        if late:
            rerun_after_record.append(key)
    assert rerun_after_record == [], "recorded steps ran again"
    executions = len(book.executions)
    recovered = WorkflowRun.objects.filter(pk__in=runs, recovery_count__gt=0).count()
    figures = {
        "runs": RUNS,
        "steps": RUNS * LEDGER_STEPS,
        "kills": KILLS,
        "kills_inside_a_step": kills_in_step,
        "step_executions": executions,
        "re_executed_in_flight": executions - RUNS * LEDGER_STEPS,
        "runs_recovered_from_dead_workers": recovered,
        "runs_lost": 0,
        "recorded_steps_run_again": 0,
        "atomic_steps": RUNS,
        "atomic_writes_committed": sum(book.atomic.values()),
        "storm_seconds": round(killed_at - began, 1),
        "drain_after_last_kill_seconds": round(finished - killed_at, 1),
        **backend(),
    }
    record(f"sigkill_storm_{figures['database']}", "SIGKILL storm", figures)
    assert kills_in_step >= 1
    # Every execution beyond one per step was a step cut short by a kill.
    assert executions - RUNS * LEDGER_STEPS <= KILLS * 2
