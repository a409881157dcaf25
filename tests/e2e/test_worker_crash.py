"""SIGKILL a real worker cluster in the middle of a step; a new cluster finishes every run.

Runs in whichever mode the suite runs in: SQLite + ORM broker, or PostgreSQL + Redis broker.
"""

from collections import Counter

import pytest
from django.db import connection

import tests.e2e.flows  # noqa: F401  (registers "crashable" in this process too)
from tests.e2e.flows import LEDGER_DDL, LEDGER_DROP
from tests.e2e.processes import Cluster, child_env, wait_until
from workflows import notify, start
from workflows.models import RunStatus, Step, StepStatus, WorkflowRun

pytestmark = [pytest.mark.multiprocess, pytest.mark.django_db(transaction=True)]

RUNS = 20


@pytest.fixture
def ledger():
    with connection.cursor() as cursor:
        for statement in LEDGER_DDL:
            cursor.execute(statement)
    yield
    with connection.cursor() as cursor:
        for statement in LEDGER_DROP:
            cursor.execute(statement)


def ledger_rows(table: str) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT key FROM {table}")
        return [row[0] for row in cursor.fetchall()]


def test_sigkill_mid_step_loses_no_run_and_reruns_no_recorded_step(ledger, tmp_path):
    env = child_env(HITL_WORKFLOW_MODULES="tests.e2e.flows")
    runs = [start("crashable", {"n": n}) for n in range(RUNS)]

    first = Cluster(env, tmp_path / "cluster-1.log")
    try:
        # Kill once a good share of the work is done and some step is executing right now.
        wait_until(
            lambda: (
                Step.objects.filter(status=StepStatus.COMPLETED, name="one").count() >= 5
                and Step.objects.filter(status=StepStatus.RUNNING).exists()
            ),
            timeout=60,
            interval=0.05,
            what="steps to be running in the first cluster",
        )
        in_flight = Step.objects.filter(status=StepStatus.RUNNING).count()
    finally:
        first.kill()
    assert in_flight >= 1, "the kill must land inside a step"
    completed_at_kill = set(
        Step.objects.filter(status=StepStatus.COMPLETED, kind="step").values_list(
            "run_id", "sequence"
        )
    )

    second = Cluster(env, tmp_path / "cluster-2.log")
    try:
        # Every run reaches its event wait, including those whose worker died under them.
        wait_until(
            lambda: (
                WorkflowRun.objects.filter(status=RunStatus.WAITING, waits__key="go").count()
                == RUNS
            ),
            timeout=90,
            what="all runs to wait for their event",
        )
        for n in range(RUNS):
            assert notify(f"crash-go-{n}", {"n": n}).resumed == 1
        wait_until(
            lambda: WorkflowRun.objects.filter(status=RunStatus.COMPLETED).count() == RUNS,
            timeout=90,
            what="all runs to complete",
        )
    finally:
        second.stop()

    for run in WorkflowRun.objects.filter(pk__in=[r.pk for r in runs]):
        assert run.result == {"steps": ["one", "two", "three"], "event": {"n": run.input["n"]}}

    executions = Counter(ledger_rows("hitl_test_ledger"))
    effects = Counter(ledger_rows("hitl_test_effects"))
    step_keys = [
        f"{run_id}:{seq}"
        for run_id, seq in Step.objects.filter(kind="step").values_list("run_id", "sequence")
    ]
    assert len(step_keys) == RUNS * 3
    # The effect keyed by the idempotency key happened exactly once for every step.
    assert all(effects[key] == 1 for key in step_keys)
    # A step recorded before the kill never ran again.
    for run_id, seq in completed_at_kill:
        assert executions[f"{run_id}:{seq}"] == 1, f"recorded step {run_id}:{seq} ran again"
    # Only steps that were executing at the moment of the kill ran a second time.
    rerun = [key for key, count in executions.items() if count > 1]
    assert len(rerun) <= in_flight
    assert all(count <= 2 for count in executions.values())
    recovered = WorkflowRun.objects.filter(recovery_count__gt=0).count()
    assert recovered >= 1  # the runs the dead cluster held were taken back by the sweeper
