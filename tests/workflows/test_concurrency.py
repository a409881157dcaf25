"""Two workers advancing the same run at the same moment execute its next step once."""

import threading
import time

import pytest
from django.db import connection

from tests.conftest import requires_postgres, run_in_threads
from workflows import start
from workflows.engine import advance
from workflows.models import RunStatus
from workflows.registry import registry, workflow

pytestmark = [requires_postgres, pytest.mark.django_db(transaction=True)]

calls: list[int] = []


def slow_effect():
    calls.append(1)
    time.sleep(0.3)  # keep the first worker inside the step while the second tries
    return "done"


@pytest.fixture
def slow_workflow():
    @workflow("slow-once")
    def flow(ctx, data):
        return ctx.step("effect", slow_effect)

    calls.clear()
    yield
    registry.unregister("slow-once")


@pytest.mark.parametrize("workers", [2, 8])
def test_concurrent_advances_of_one_run_execute_its_step_once(slow_workflow, workers):
    run = start("slow-once", {})
    barrier = threading.Barrier(workers)
    outcomes: list[str] = []

    def worker():
        barrier.wait()
        try:
            outcomes.append(advance(run.pk))
        finally:
            connection.close()

    run_in_threads(*[worker] * workers, timeout=30)

    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED
    assert len(calls) == 1
    assert sorted(outcomes) == ["completed"] + ["skipped"] * (workers - 1)
