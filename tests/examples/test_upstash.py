"""Upstash (seed 000), in process: the rejected and the unanswered paths. The approved path
with real worker, web and WebSocket processes is in test_upstash_live.py."""

from datetime import timedelta

import pytest

from workflows import clock, notify, start
from workflows.models import RunStatus
from workflows.testing import run_until_idle

pytestmark = pytest.mark.django_db

INPUT = {"user_id": "u-1", "action": "delete account"}


def waiting_run():
    run = start("upstash-approval", INPUT)
    run_until_idle()
    run.refresh_from_db()
    assert run.status == RunStatus.WAITING
    return run


def test_reject_runs_the_rejected_branch():
    run = waiting_run()
    notify(f"approval-{run.pk}", {"approved": False})
    run_until_idle()
    run.refresh_from_db()

    assert run.result == {"success": True, "approved": False, "workflowRunId": str(run.pk)}
    steps = list(run.steps.filter(kind="step").values_list("name", flat=True))
    assert steps == ["initial-processing", "process-rejected"]


def test_no_answer_within_5_minutes_times_out():
    run = waiting_run()
    clock.travel(timedelta(minutes=4))
    run_until_idle()
    run.refresh_from_db()
    assert run.status == RunStatus.WAITING
    clock.travel(timedelta(minutes=1, seconds=1))
    run_until_idle()
    run.refresh_from_db()

    assert run.result == {"success": False, "reason": "timeout"}
    assert run.events.filter(type="wait.timed_out").count() == 1
