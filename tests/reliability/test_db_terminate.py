"""PostgreSQL terminates the worker's connection in the middle of a step: the run recovers."""

import pytest
from django.db import connection

import tests.reliability.flows  # noqa: F401
from tests.conftest import requires_postgres
from tests.e2e.processes import Cluster, child_env, wait_until
from workflows import start
from workflows.models import RunStatus, Step, WorkflowRun

from .ledger import Ledger

pytestmark = [requires_postgres, pytest.mark.multiprocess, pytest.mark.django_db(transaction=True)]


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


def test_connection_terminated_during_a_step_recovers(ledger, tmp_path):
    run = start("slow-step", {"seconds": 2})
    cluster = Cluster(
        child_env(HITL_WORKFLOW_MODULES="tests.reliability.flows"), tmp_path / "cluster.log"
    )
    try:
        wait_until(
            lambda: Step.objects.filter(run=run, status="running").exists(),
            timeout=60,
            interval=0.05,
            what="the step to start",
        )
        assert terminate_other_backends() >= 1
        wait_until(
            lambda: WorkflowRun.objects.get(pk=run.pk).status == RunStatus.COMPLETED,
            timeout=90,
            what="the run to recover and complete",
        )
    finally:
        cluster.stop()
    run.refresh_from_db()
    assert run.recovery_count >= 1  # taken back after its lease expired
    book = Ledger.read()
    key = f"{run.pk}:0"
    assert book.effects[key] == 1
    assert len(book.runs_of(key)) == 2  # cut short once, then run to the end
