"""PostgreSQL terminates the workers' connections in the middle of steps, again and again:
every run recovers, every step's effect applies once, and no recorded step runs again.

Figures are printed with ``-s`` and written to var/reliability/. ``HITL_RELIABILITY_LARGE=1``
runs 40 runs and 15 cuts instead of 8 and 3."""

import random
import time

import pytest
from django.db import connection

import tests.reliability.flows  # noqa: F401  (registers slow-step in this process)
from tests.conftest import requires_postgres
from tests.e2e.processes import Cluster, child_env, wait_until
from workflows import start
from workflows.models import RunStatus, Step, WorkflowRun

from .conftest import LARGE
from .figures import backend, record
from .ledger import Ledger, executions_since

pytestmark = [requires_postgres, pytest.mark.multiprocess, pytest.mark.django_db(transaction=True)]

RUNS, CUTS = (40, 15) if LARGE else (8, 3)
STEP_SECONDS = 1.0


def other_backends(*, terminate: bool = False) -> int:
    """How many server processes serve this database besides this test's own (terminated with
    ``terminate``)."""
    counted = "pg_terminate_backend(pid)" if terminate else "*"
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT count({counted}) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return cursor.fetchone()[0]


def terminate_other_backends() -> int:
    return other_backends(terminate=True)


def test_connections_terminated_during_steps_recover(ledger, tmp_path):
    rng = random.Random(20261203)
    runs = [start("slow-step", {"seconds": STEP_SECONDS}).pk for _ in range(RUNS)]
    cluster = Cluster(
        child_env(HITL_WORKFLOW_MODULES="tests.reliability.flows"), tmp_path / "cluster.log"
    )
    began = time.monotonic()
    terminated = 0
    last_cut = time.time()
    try:
        for cut in range(CUTS):
            # A step that began after the last cut (a cut step stays "running" until its lease
            # expires, so the step's status cannot tell), cut at a random moment of its first
            # half: every cut lands inside a live step.
            wait_until(
                lambda since=last_cut: executions_since(since),
                timeout=60,
                interval=0.02,
                what=f"a step to begin after cut {cut}",
            )
            time.sleep(rng.uniform(0.0, STEP_SECONDS / 2))
            last_cut = time.time()
            terminated += terminate_other_backends()
        cut_at = time.monotonic()
        wait_until(
            lambda: (
                WorkflowRun.objects.filter(pk__in=runs, status=RunStatus.COMPLETED).count() == RUNS
            ),
            timeout=240,
            what="every run to recover and complete",
        )
        finished = time.monotonic()
    finally:
        cluster.stop()

    book = Ledger.read()
    recorded = dict(
        Step.objects.filter(run_id__in=runs, kind="step").values_list("run_id", "finished_at")
    )
    assert len(recorded) == RUNS
    for run_id, finished_at in recorded.items():
        key = f"{run_id}:0"
        assert book.effects[key] == 1, f"effect of {key} applied {book.effects[key]} times"
        starts = book.runs_of(key)
        assert starts and max(starts) <= finished_at.timestamp() + 0.05, f"{key} ran again"
    executions = len(book.executions)
    recovered = WorkflowRun.objects.filter(pk__in=runs, recovery_count__gt=0).count()
    record(
        f"db_terminate_{backend()['database']}",
        "Connections terminated during steps",
        {
            "runs": RUNS,
            "cuts": CUTS,
            "backends_terminated": terminated,
            "step_executions": executions,
            "re_executed_after_a_cut": executions - RUNS,
            "runs_recovered_after_lease": recovered,
            "runs_lost": 0,
            "effects_applied_twice": 0,
            "cutting_seconds": round(cut_at - began, 1),
            "recovery_after_last_cut_seconds": round(finished - cut_at, 1),
            **backend(),
        },
    )
    # Every cut ended the step it landed in, and at most the two the two workers were running.
    assert CUTS <= executions - RUNS <= 2 * CUTS
    assert recovered >= 1
