"""PostgreSQL terminates the workers' connections in the middle of steps, again and again:
every run recovers, every step's effect applies once, and no recorded step runs again.

Figures are printed with ``-s`` and written to var/reliability/. ``HITL_RELIABILITY_LARGE=1``
runs 40 runs and 15 cuts instead of 8 and 3."""

import random
import time

import pytest
from django.db import connection

import tests.reliability.flows  # noqa: F401
from tests.conftest import requires_postgres
from tests.e2e.processes import Cluster, child_env, wait_until
from workflows import start
from workflows.models import RunStatus, Step, WorkflowRun

from .conftest import LARGE
from .figures import backend, record
from .ledger import Ledger

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
    in_step = Step.objects.filter(run_id__in=runs, status="running")
    cluster = Cluster(
        child_env(HITL_WORKFLOW_MODULES="tests.reliability.flows"), tmp_path / "cluster.log"
    )
    began = time.monotonic()
    terminated = cut_in_step = 0
    try:
        for cut in range(CUTS):
            # Recovered runs start their step again after the lease: there is always one to cut.
            wait_until(in_step.exists, timeout=60, interval=0.05, what=f"a step to cut ({cut})")
            time.sleep(rng.uniform(0.0, STEP_SECONDS / 2))
            cut_in_step += in_step.exists()
            terminated += terminate_other_backends()
        last_cut = time.monotonic()
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
            "cuts_inside_a_step": cut_in_step,
            "backends_terminated": terminated,
            "step_executions": executions,
            "re_executed_after_a_cut": executions - RUNS,
            "runs_recovered_after_lease": recovered,
            "runs_lost": 0,
            "effects_applied_twice": 0,
            "cutting_seconds": round(last_cut - began, 1),
            "recovery_after_last_cut_seconds": round(finished - last_cut, 1),
            **backend(),
        },
    )
    assert cut_in_step >= 1 and recovered >= 1  # the cuts landed in steps and were recovered
    # A cut ends at most the two steps the two workers were running.
    assert executions - RUNS <= 2 * CUTS
