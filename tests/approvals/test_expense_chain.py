"""The awaitly seed's multi-stage expense: manager always, finance above 1000, CEO above 10000."""

import pytest

from approvals.models import ApprovalRequest, StageStatus
from approvals.selectors import approval_progress
from approvals.services import approval_decide
from tests.approvals import flows
from tests.approvals.conftest import start_and_wait
from workflows.models import RunStatus
from workflows.testing import run_until_idle

pytestmark = pytest.mark.django_db


def open_stage_name(request):
    request.refresh_from_db()
    return request.current_stage.name if request.is_open else None


@pytest.mark.parametrize(
    ("amount", "chain"),
    [
        (500, [("manager", "ann")]),
        (5000, [("manager", "ann"), ("finance", "fay")]),
        (20000, [("manager", "ann"), ("finance", "fay"), ("ceo", "ceo")]),
    ],
)
def test_expense_takes_exactly_the_right_stages(people, amount, chain):
    run = start_and_wait("expense", {"amount": amount, "requested_by": "rita"})
    request = ApprovalRequest.objects.get(run=run)
    assert list(request.stages.values_list("name", flat=True)) == [name for name, _ in chain]

    for index, (stage_name, approver) in enumerate(chain):
        # Only the current stage is open; later ones wait their turn.
        assert open_stage_name(request) == stage_name
        later = request.stages.filter(order__gt=index)
        assert set(later.values_list("status", flat=True)) <= {StageStatus.QUEUED}
        assert not flows.calls, "nothing is paid before the last approval"
        approval_decide(
            request=request, actor=getattr(people, approver), action="approve", channel="api"
        )
        run_until_idle()

    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED, run.error
    assert run.result == {
        "paid": True,
        "amount": amount,
        "stages": [[name, "approved", [who]] for name, who in chain],
    }
    assert flows.calls == [("paid", amount)]
    assert approval_progress(request) == " -> ".join(
        f"{name} approved by {who}" for name, who in chain
    )


def test_progress_text_while_the_chain_is_underway(people):
    run = start_and_wait("expense", {"amount": 20000, "requested_by": "rita"})
    request = ApprovalRequest.objects.get(run=run)
    finance = request.stages.get(name="finance")
    finance.required = 2
    finance.save()
    assert approval_progress(request) == "manager waiting 0 of 1 -> finance -> ceo"
    approval_decide(request=request, actor=people.ann, action="approve")
    approval_decide(request=request, actor=people.fay, action="approve")
    assert approval_progress(request) == (
        "manager approved by ann -> finance waiting 1 of 2 -> ceo"
    )


def test_rejection_midway_stops_the_chain(people):
    run = start_and_wait("expense", {"amount": 20000, "requested_by": "rita"})
    request = ApprovalRequest.objects.get(run=run)
    approval_decide(request=request, actor=people.ann, action="approve")
    approval_decide(request=request, actor=people.fay, action="reject", comment="no receipt")
    run_until_idle()
    run.refresh_from_db()
    assert run.result == {"paid": False, "status": "rejected", "reason": "no receipt"}
    assert flows.calls == []
    assert approval_progress(request) == (
        "manager approved by ann -> finance rejected by fay -> ceo"
    )
