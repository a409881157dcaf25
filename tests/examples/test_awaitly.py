"""awaitly (seed 001): refund with edit and auto-reject, gated calls, stages by amount,
escalation, crash recovery at start-up, and a retry after approvals that asks nobody again."""

from datetime import timedelta

import pytest
from rest_framework.test import APIClient

from approvals.errors import ApprovalNotAllowed
from approvals.models import ApprovalRequest, DecisionRecord
from examples import awaitly
from examples.models import Effect
from workflows import clock, retry
from workflows.models import RunStatus, Step, StepStatus
from workflows.testing import run_until_idle

from .conftest import decide, pending_request, start_and_idle

pytestmark = pytest.mark.django_db

REFUND = {"order_id": "A-1001", "amount": 5000, "requested_by": "requester"}


def decide_over_api(user, request, body: dict):
    """What awaitly's approval webhook handler does, over this project's REST API."""
    client = APIClient()
    client.force_authenticate(user)
    return client.post(f"/api/v1/approvals/{request.pk}/decide/", body, format="json")


def test_refund_edited_from_5000_to_4500_refunds_4500(accounts):
    run = start_and_idle("awaitly-refund", REFUND)
    assert run.status == RunStatus.WAITING
    request = pending_request(run)
    assert request.title == "Refund 5000 for order A-1001"
    # Four-eyes: the requester cannot approve their own refund.
    refused = decide_over_api(accounts["requester"], request, {"action": "approve"})
    assert refused.status_code == 403
    # A reviewer may lower a refund, never raise it.
    raised = decide_over_api(
        accounts["manager"], request, {"action": "edit", "value": {"amount": 6000}}
    )
    assert raised.status_code == 400

    edited = decide_over_api(
        accounts["manager"], request, {"action": "edit", "value": {"amount": 4500}}
    )
    assert edited.status_code == 200, edited.content
    run_until_idle()
    run.refresh_from_db()

    assert run.status == RunStatus.COMPLETED
    assert run.result == {
        "refunded": True,
        "amount": 4500,
        "original_amount": 5000,
        "edited": True,
        "approved_by": "manager",
    }
    refund = Effect.objects.get(kind="refund")
    assert (refund.target, refund.data) == ("A-1001", {"amount": 4500})


def test_refund_rejected_or_unanswered_for_24_hours_refunds_nothing(accounts):
    rejected = start_and_idle("awaitly-refund", REFUND)
    rejected = decide(rejected, accounts["manager"], "reject", comment="Already refunded")
    assert rejected.result == {
        "refunded": False,
        "status": "rejected",
        "reason": "Already refunded",
    }

    ignored = start_and_idle("awaitly-refund", {**REFUND, "order_id": "A-1003"})
    clock.travel(timedelta(hours=23, minutes=59))
    run_until_idle()
    ignored.refresh_from_db()
    assert ignored.status == RunStatus.WAITING
    clock.travel(timedelta(minutes=2))
    run_until_idle()
    ignored.refresh_from_db()
    assert ignored.status == RunStatus.COMPLETED
    assert ignored.result["refunded"] is False
    assert ignored.result["status"] == "timed_out"
    assert not Effect.objects.filter(kind="refund").exists()


def test_gated_calls_wait_only_for_outside_emails_and_important_deletes(accounts):
    run = start_and_idle(
        "awaitly-agent-actions",
        {
            "emails": [
                {"to": "team@mycompany.com", "subject": "Report", "body": "Hi"},
                {"to": "external@other.com", "subject": "Hello", "body": "..."},
            ],
            "deletes": ["/tmp/foo.txt", "/important/data.json"],
            "requested_by": "requester",
        },
    )
    # The internal email went out at once; the outside one waits, its arguments on show.
    assert list(Effect.objects.values_list("kind", "target")) == [("email", "team@mycompany.com")]
    request = pending_request(run)
    assert request.title == 'Send email to external@other.com: "Hello"'
    assert request.payload == {
        "function": "examples.awaitly.send_email",
        "args": ["external@other.com", "Hello", "..."],
        "kwargs": {},
    }
    run = decide(run, accounts["reviewer"])
    # /tmp/foo.txt needed nobody; /important/data.json waits and is rejected.
    assert Effect.objects.filter(kind="delete", target="/tmp/foo.txt").exists()
    assert pending_request(run).title == "Delete file: /important/data.json"
    run = decide(run, accounts["reviewer"], "reject", comment="Keep it")

    assert run.status == RunStatus.COMPLETED
    assert [(a["action"], a["done"]) for a in run.result["actions"]] == [
        ("send-email-0", True),
        ("send-email-1", True),
        ("delete-file-0", True),
        ("delete-file-1", False),
    ]
    assert run.result["actions"][3]["reason"] == "Keep it"
    assert sorted(Effect.objects.values_list("target", flat=True)) == [
        "/tmp/foo.txt",
        "external@other.com",
        "team@mycompany.com",
    ]


@pytest.mark.parametrize(
    ("amount", "stages"),
    [(800, ["manager"]), (4200, ["manager", "finance"]), (15000, ["manager", "finance", "ceo"])],
)
def test_expense_stages_follow_the_amount(accounts, amount, stages):
    run = start_and_idle(
        "awaitly-expense",
        {"amount": amount, "description": "Laptops", "requested_by": "requester"},
    )
    deciders = {"manager": "manager", "finance": "finance", "ceo": "ceo"}
    seen = []
    while run.status == RunStatus.WAITING:
        stage = pending_request(run).current_stage.name
        seen.append(stage)
        run = decide(run, accounts[deciders[stage]])
    assert seen == stages
    assert run.result["paid"] is True
    assert [a["stage"] for a in run.result["approvals"]] == stages
    assert Effect.objects.get(kind="payment").data == {"amount": amount}


def test_expense_escalates_to_a_senior_manager_after_4_hours(accounts):
    run = start_and_idle(
        "awaitly-expense", {"amount": 300, "description": "Taxi", "requested_by": "requester"}
    )
    clock.travel(timedelta(hours=4, minutes=1))
    run_until_idle()
    request = pending_request(run)
    assert list(request.current_stage.groups.values_list("name", flat=True)) == ["senior-managers"]
    with pytest.raises(ApprovalNotAllowed):  # no longer the managers' to decide
        decide(run, accounts["manager"])

    run = decide(run, accounts["senior-manager"])

    assert run.result["paid"] is True
    assert run.result["approvals"] == [
        {"stage": "manager", "by": ["senior-manager"], "escalated": True}
    ]


class WorkerKilled(BaseException):
    """Stands in for SIGKILL: nothing after it runs, the engine records nothing more."""


def test_run_interrupted_by_a_crash_is_recovered_at_start_up(accounts, monkeypatch):
    run = start_and_idle(
        "awaitly-expense", {"amount": 500, "description": "Desk", "requested_by": "requester"}
    )
    pay = awaitly.pay_expense

    def pay_then_die(ctx, requested_by, amount):
        pay(ctx, requested_by, amount)  # the payment reached the provider...
        monkeypatch.setattr(awaitly, "pay_expense", pay)
        raise WorkerKilled()  # ...and the worker died before recording the step

    monkeypatch.setattr(awaitly, "pay_expense", pay_then_die)
    with pytest.raises(WorkerKilled):
        decide(run, accounts["manager"])
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING
    assert Step.objects.get(run=run, name="process-expense").status == StepStatus.RUNNING

    # A worker starting later finds the dead worker's lease expired and takes the run over.
    clock.travel(timedelta(minutes=10))
    run_until_idle()
    run.refresh_from_db()

    assert run.status == RunStatus.COMPLETED
    assert run.recovery_count == 1
    assert run.events.filter(type="run.recovered").count() == 1
    assert Step.objects.get(run=run, name="process-expense").attempts == 2
    payment = Effect.objects.get(kind="payment")  # paid once, although asked twice
    assert payment.requests == 2
    assert run.result["payment"] == payment.pk
    assert ApprovalRequest.objects.filter(run=run).count() == 1


def test_processing_failing_after_approvals_continues_on_retry_without_asking_again(
    accounts, settings
):
    run = start_and_idle(
        "awaitly-expense",
        {"amount": 4200, "description": "Conference", "requested_by": "requester"},
    )
    run = decide(run, accounts["manager"])
    settings.HITL_EXAMPLES_OUTAGES = {"payments"}
    run = decide(run, accounts["finance"])
    for _ in range(2):  # the step's two retries, a minute and two minutes later
        assert run.status == RunStatus.PENDING
        clock.travel(timedelta(minutes=3))
        run_until_idle()
        run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert "payments provider is unavailable" in run.error
    decisions = DecisionRecord.objects.filter(request__run=run).count()

    settings.HITL_EXAMPLES_OUTAGES = set()
    retry(run.pk)
    run_until_idle()
    run.refresh_from_db()

    assert run.status == RunStatus.COMPLETED
    assert run.result["approvals"] == [
        {"stage": "manager", "by": ["manager"], "escalated": False},
        {"stage": "finance", "by": ["finance"], "escalated": False},
    ]
    # Nobody was asked again: one request, no new audit records.
    assert ApprovalRequest.objects.filter(run=run).count() == 1
    assert DecisionRecord.objects.filter(request__run=run).count() == decisions
    assert Effect.objects.get(kind="payment").data == {"amount": 4200}
