"""Deadlines through the engine's sweeper: reject, approve, escalate; and reminders.
Time moves with workflows.clock.travel; nothing sleeps."""

from datetime import timedelta

import pytest
from django.utils.dateparse import parse_datetime

from approvals.errors import ApprovalNotAllowed
from approvals.models import ApprovalRequest, Notification, StageStatus
from approvals.services import approval_decide
from tests.approvals.conftest import start_and_wait
from workflows import clock
from workflows.models import RunEvent, RunStatus
from workflows.sweeper import sweep
from workflows.testing import run_until_idle

pytestmark = pytest.mark.django_db

HOUR = timedelta(hours=1)
MINUTE = timedelta(minutes=1)


def start_deadline(**data):
    run = start_and_wait("deadline", data)
    request = ApprovalRequest.objects.get(run=run)
    return run, request


def result_after(run, delta):
    clock.travel(delta)
    run_until_idle()
    run.refresh_from_db()
    return run


def test_the_wait_deadline_is_the_open_stage_deadline(people):
    run, request = start_deadline(on_timeout="reject")
    stage = request.stages.get()
    assert stage.deadline is not None
    assert request.wait.deadline == stage.deadline
    waiting = RunEvent.objects.filter(run=run, type="run.waiting").get()
    assert waiting.data["deadline"] is not None
    assert waiting.data["kind"] == "approval"


def test_timeout_reject(people):
    run, request = start_deadline(on_timeout="reject")
    assert result_after(run, 59 * MINUTE).status == RunStatus.WAITING
    run = result_after(run, 2 * MINUTE)
    assert run.status == RunStatus.COMPLETED, run.error
    assert run.result == {
        "status": "timed_out",
        "approved": False,
        "timed_out": True,
        "decided_by": None,
        "stages": [["first", "timed_out"]],
    }
    record = request.decisions.get(action="timeout")
    assert (record.channel, record.actor_id, record.data) == (
        "system",
        None,
        {"outcome": "timed_out"},
    )
    assert request.wait.__class__.objects.get(pk=request.wait_id).status == "timed_out"


def test_a_decision_before_the_deadline_wins_and_the_deadline_does_nothing(people):
    run, request = start_deadline(on_timeout="reject")
    approval_decide(request=request, actor=people.ann, action="approve")
    run = result_after(run, 2 * HOUR)
    assert run.result["status"] == "approved"
    assert not request.decisions.filter(action="timeout").exists()


def test_timeout_approve_opens_the_next_stage(people):
    run, request = start_deadline(on_timeout="approve", second=True)
    run = result_after(run, HOUR + MINUTE)
    assert run.status == RunStatus.WAITING
    request.refresh_from_db()
    assert request.current_stage.name == "second"
    assert request.stages.get(name="first").status == StageStatus.APPROVED
    # The second stage has no timeout: the wait no longer has a deadline.
    assert request.wait.__class__.objects.get(pk=request.wait_id).deadline is None

    approval_decide(request=request, actor=people.fay, action="approve")
    run_until_idle()
    run.refresh_from_db()
    assert run.result == {
        "status": "approved",
        "approved": True,
        "timed_out": True,  # a deadline decided part of it
        "decided_by": "fay",
        "stages": [["first", "approved"], ["second", "approved"]],
    }


def test_timeout_escalates_to_a_group_with_a_fresh_deadline(people):
    run, request = start_deadline(on_timeout="escalate", escalate_to="senior-managers")
    run = result_after(run, HOUR + MINUTE)
    assert run.status == RunStatus.WAITING

    stage = request.stages.get()
    assert list(stage.groups.values_list("name", flat=True)) == ["senior-managers"]
    assert stage.escalation_count == 1
    # Fresh: a full hour from the escalation (which happened "now").
    assert abs((stage.deadline - (clock.now() + HOUR)).total_seconds()) < 5
    assert request.wait.__class__.objects.get(pk=request.wait_id).deadline == stage.deadline
    # The audit records the escalation, where to, and the new deadline.
    record = request.decisions.get(action="escalate")
    assert record.channel == "system"
    assert record.data["from"] == {"users": [], "groups": ["managers"]}
    assert record.data["to"] == {"users": [], "groups": ["senior-managers"]}
    recorded = parse_datetime(record.data["deadline"])
    assert abs((recorded - stage.deadline).total_seconds()) < 0.001
    assert RunEvent.objects.filter(
        run=run, type="approval.updated", data__change="escalated"
    ).exists()
    escalated = Notification.objects.filter(request=request, hook="approval_escalated")
    assert list(escalated.values_list("recipient__username", flat=True)) == ["sam"]

    # The original assignees are out; the escalation group decides.
    with pytest.raises(ApprovalNotAllowed):
        approval_decide(request=request, actor=people.ann, action="approve")
    approval_decide(request=request, actor=people.seniors, action="approve")
    run_until_idle()
    run.refresh_from_db()
    assert run.result["status"] == "approved"
    assert run.result["decided_by"] == "sam"


def test_an_escalated_stage_that_expires_again_times_out(people):
    run, request = start_deadline(on_timeout="escalate", escalate_to="senior-managers")
    result_after(run, HOUR + MINUTE)
    run = result_after(run, HOUR + MINUTE)
    assert run.status == RunStatus.COMPLETED
    assert run.result["status"] == "timed_out"
    assert list(request.decisions.values_list("action", flat=True)) == [
        "create",
        "escalate",
        "timeout",
    ]


def test_reminders_before_the_deadline_only(people):
    run, request = start_deadline(on_timeout="reject", remind_every=20 * 60)
    stage = request.stages.get()
    assert stage.next_reminder_at == stage.opened_at + timedelta(minutes=20)

    clock.travel(19 * MINUTE)
    sweep()
    assert not request.decisions.filter(action="remind").exists()

    clock.travel(2 * MINUTE)
    sweep()
    reminders = Notification.objects.filter(request=request, hook="reminder")
    assert sorted(reminders.values_list("recipient__username", flat=True)) == ["ann", "bob"]
    assert request.decisions.filter(action="remind").count() == 1

    # Once ann claims the stage, only she is reminded.
    approval_decide(request=request, actor=people.ann, action="claim")
    clock.travel(20 * MINUTE)
    sweep()
    assert request.decisions.filter(action="remind").count() == 2
    latest = reminders.order_by("-id").first()
    assert latest.recipient.username == "ann"

    # The next one would fall on the deadline: none is sent; the deadline rejects instead.
    stage.refresh_from_db()
    assert stage.next_reminder_at is None
    clock.travel(20 * MINUTE)
    sweep()
    run_until_idle()
    run.refresh_from_db()
    assert run.result["status"] == "timed_out"
    assert request.decisions.filter(action="remind").count() == 2
    changes = RunEvent.objects.filter(run=run, type="approval.updated", data__change="reminder")
    assert changes.count() == 2
