"""Edit before approving (awaitly's editApproval): the run continues with the edited value."""

import pytest

from approvals.models import ApprovalRequest
from approvals.selectors import approval_diff, approval_history
from approvals.services import approval_decide
from tests.approvals import flows
from tests.approvals.conftest import start_and_wait
from workflows.models import RunStatus
from workflows.testing import run_until_idle

pytestmark = pytest.mark.django_db


def test_budget_5000_edited_to_4500_continues_with_4500(people):
    run = start_and_wait("budget", {"budget": 5000})
    request = ApprovalRequest.objects.get(run=run)

    approval_decide(
        request=request,
        actor=people.ann,
        action="edit",
        value={"budget": 4500},
        comment="trimmed",
        channel="review",
    )
    run_until_idle()
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED, run.error
    assert run.result == {"allocated": 4500, "original": 5000}
    assert flows.calls == [("allocated", 4500)]

    # The audit shows both values, who changed them, from where.
    edit = approval_history(request).get(action="edit")
    assert (edit.original_value, edit.value) == ({"budget": 5000}, {"budget": 4500})
    assert (edit.actor_name, edit.channel, edit.comment) == ("ann", "review", "trimmed")
    request.refresh_from_db()
    assert (request.payload, request.value) == ({"budget": 5000}, {"budget": 4500})
    assert approval_diff(request) == [
        {"path": "budget", "old": 5000, "new": 4500, "change": "changed"}
    ]


def test_an_edit_outside_the_schema_is_refused_and_the_value_stays(people):
    run = start_and_wait("budget", {"budget": 5000})
    request = ApprovalRequest.objects.get(run=run)
    from approvals.errors import InvalidDecision

    with pytest.raises(InvalidDecision) as invalid:
        approval_decide(request=request, actor=people.ann, action="edit", value={"budget": 9000})
    assert "budget" in invalid.value.errors
    with pytest.raises(InvalidDecision):
        approval_decide(request=request, actor=people.ann, action="edit", value={"other": 1})
    request.refresh_from_db()
    assert request.value == {"budget": 5000}
    assert not request.decisions.filter(action="edit").exists()
