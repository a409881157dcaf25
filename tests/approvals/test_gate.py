"""Pre-execution gating: a risky call runs only once approved, with its arguments shown."""

import pytest

from approvals.models import ApprovalRequest
from approvals.services import approval_decide
from tests.approvals import flows
from tests.approvals.conftest import start_and_wait
from workflows.models import RunStatus
from workflows.testing import run_until_idle

pytestmark = pytest.mark.django_db


def test_email_to_own_domain_runs_at_once(people):
    run = start_and_wait("gated-email", {"to": "ann@mycompany.com", "subject": "Hi"})
    assert run.status == RunStatus.COMPLETED, run.error
    assert run.result == {"sent_to": "ann@mycompany.com"}
    assert flows.calls == [("email", "ann@mycompany.com", "Hi")]
    assert not ApprovalRequest.objects.filter(run=run).exists()


def test_email_to_outside_domain_waits_for_approval(people):
    run = start_and_wait("gated-email", {"to": "x@other.com", "subject": "Offer"})
    assert run.status == RunStatus.WAITING
    assert flows.calls == []  # nothing sent yet
    request = ApprovalRequest.objects.get(run=run)
    assert request.title == 'Send email to x@other.com: "Offer"'
    assert request.payload == {
        "function": "tests.approvals.flows.send_email",
        "args": ["x@other.com", "Offer"],
        "kwargs": {},
    }
    approval_decide(request=request, actor=people.ann, action="approve")
    run_until_idle()
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED, run.error
    assert flows.calls == [("email", "x@other.com", "Offer")]


def test_rejected_gate_never_runs_the_call(people):
    run = start_and_wait("gated-email", {"to": "x@other.com", "subject": "Offer"})
    request = ApprovalRequest.objects.get(run=run)
    approval_decide(request=request, actor=people.ann, action="reject", comment="not to them")
    run_until_idle()
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert run.error_type == "GateRejected"
    assert "Gate 'send-email' was not approved (rejected by ann): not to them" in run.error
    assert flows.calls == []


def test_reviewer_can_correct_the_arguments(people):
    run = start_and_wait("gated-email", {"to": "x@other.com", "subject": "Offre"})
    request = ApprovalRequest.objects.get(run=run)
    value = dict(request.payload, args=["x@other.com", "Offer"])
    approval_decide(request=request, actor=people.ann, action="edit", value=value)
    run_until_idle()
    assert flows.calls == [("email", "x@other.com", "Offer")]
