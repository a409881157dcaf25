"""Every rule of the decision service, once allowing and once refusing."""

import pytest

from approvals.errors import ApprovalConflict, ApprovalNotAllowed, InvalidDecision
from approvals.models import Action, ApprovalRequest, ApprovalStatus, DecisionRecord, StageStatus
from approvals.selectors import approval_progress
from approvals.services import approval_decide
from tests.approvals.conftest import make_user, start_and_wait
from workflows import cancel
from workflows.models import RunStatus
from workflows.testing import run_until_idle

pytestmark = pytest.mark.django_db


def open_request(**data):
    data.setdefault("requester", "rita")
    run = start_and_wait("approvals-simple", data)
    assert run.status == RunStatus.WAITING
    return run, ApprovalRequest.objects.get(run=run)


def finish(run):
    run_until_idle()
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED, run.error
    return run.result


def approve(request, user, **kwargs):
    return approval_decide(request=request, actor=user, action="approve", **kwargs)


# --- only assignees (or decide_any holders) decide -----------------------------------------


def test_group_member_and_named_user_may_approve(people):
    run, request = open_request(groups=[], users=["fay"])
    approve(request, people.fay)
    assert finish(run)["decided_by"] == "fay"

    run, request = open_request()  # group "reviewers"
    approve(request, people.bob)
    assert finish(run)["decided_by"] == "bob"


def test_non_assignee_is_refused_and_nothing_changes(people):
    _run, request = open_request()
    with pytest.raises(ApprovalNotAllowed, match="otto is not an assignee") as refused:
        approve(request, people.outsider)
    assert refused.value.rule == "not_assignee"
    request.refresh_from_db()
    assert request.status == ApprovalStatus.PENDING
    assert not request.decisions.filter(action=Action.APPROVE).exists()


def test_decide_any_permission_allows_a_non_assignee(people):
    run, request = open_request()
    approve(request, people.boss, channel="admin")
    assert finish(run)["decided_by"] == "boss"
    record = DecisionRecord.objects.get(request=request, action=Action.APPROVE)
    assert (record.actor_name, record.channel) == ("boss", "admin")


def test_inactive_or_missing_actor_is_refused(people):
    _run, request = open_request()
    people.ann.is_active = False
    with pytest.raises(ApprovalNotAllowed) as refused:
        approve(request, people.ann)
    assert refused.value.rule == "no_actor"
    with pytest.raises(ApprovalNotAllowed):
        approve(request, None)


# --- four-eyes: a requester never approves their own request --------------------------------


def test_requester_cannot_approve_own_request_even_as_assignee_or_superuser(people):
    rita = people.requester
    rita.groups.add(*people.ann.groups.all())
    run, request = open_request(requester="rita")
    with pytest.raises(ApprovalNotAllowed, match="four-eyes") as refused:
        approve(request, rita)
    assert refused.value.rule == "own_request"
    with pytest.raises(ApprovalNotAllowed, match="four-eyes"):
        approval_decide(request=request, actor=rita, action="edit", value={"amount": 1})
    with pytest.raises(ApprovalNotAllowed, match="four-eyes"):
        approval_decide(request=request, actor=rita, action="claim")

    root = make_user("root")
    root.is_superuser = True
    root.save()
    run, request = open_request(requester="root")
    with pytest.raises(ApprovalNotAllowed, match="four-eyes"):
        approve(request, root)
    # Someone else approves: allowed.
    approve(request, people.ann)
    assert finish(run)["approved"] is True


def test_requester_given_by_username_is_resolved(people):
    _run, request = open_request(requester="ann")  # by username
    assert request.requester_id == people.ann.pk
    with pytest.raises(ApprovalNotAllowed):
        approve(request, people.ann)


# --- one person approves at most one stage ------------------------------------------------


def test_one_person_approves_at_most_one_stage(people):
    run = start_and_wait("expense", {"amount": 5000, "requested_by": "rita"})
    request = ApprovalRequest.objects.get(run=run)
    people.carl.groups.add(*people.ann.groups.filter(name="managers"))  # carl: manager + finance
    approve(request, people.carl)
    with pytest.raises(ApprovalNotAllowed, match="already approved stage 'manager'") as refused:
        approve(request, people.carl)
    assert refused.value.rule == "one_stage_per_person"
    approve(request, people.fay)  # another finance member: allowed
    assert finish(run)["paid"] is True


# --- N-of-M quorum --------------------------------------------------------------------------


def test_quorum_needs_n_distinct_approvals(people):
    run, request = open_request(required=2)
    approve(request, people.ann)
    request.refresh_from_db()
    assert request.status == ApprovalStatus.PENDING
    assert approval_progress(request) == "review waiting 1 of 2"
    # The same person counts once.
    with pytest.raises(ApprovalNotAllowed, match="counts once") as refused:
        approve(request, people.ann)
    assert refused.value.rule == "already_approved"
    approve(request, people.bob)
    result = finish(run)
    assert result["approved"] is True
    assert result["decided_by"] == "bob"
    assert approval_progress(request) == "review approved by ann, bob"


def test_one_rejection_rejects_a_quorum_stage(people):
    run, request = open_request(required=2)
    approve(request, people.ann)
    approval_decide(request=request, actor=people.bob, action="reject", comment="too much")
    result = finish(run)
    assert (result["status"], result["reason"], result["decided_by"]) == (
        "rejected",
        "too much",
        "bob",
    )


# --- a decided stage / closed request is not decided again ---------------------------------


def test_closed_request_cannot_be_decided_again(people):
    run, request = open_request()
    approve(request, people.ann)
    with pytest.raises(ApprovalConflict, match="already approved by ann") as conflict:
        approval_decide(request=request, actor=people.bob, action="reject", comment="late")
    assert conflict.value.decided_by == "ann"
    assert finish(run)["approved"] is True
    assert request.decisions.filter(action__in=["approve", "reject"]).count() == 1


def test_a_decided_stage_named_by_the_caller_is_not_decided_again(people):
    run = start_and_wait("expense", {"amount": 20000, "requested_by": "rita"})
    request = ApprovalRequest.objects.get(run=run)
    with pytest.raises(ApprovalConflict, match="Stage 'ceo' is not open yet"):
        approve(request, people.ceo, stage="ceo")
    approve(request, people.ann, stage="manager")
    # bob meant the manager stage (e.g. an old email link): refused, naming who decided it,
    # rather than landing on the finance stage.
    with pytest.raises(ApprovalConflict, match="Stage 'manager' was already approved by ann"):
        approve(request, people.bob, stage="manager")
    approve(request, people.fay, stage="finance")
    approve(request, people.ceo, stage=request.stages.get(name="ceo").pk)
    assert finish(run)["paid"] is True


def test_unknown_stage_or_action_is_invalid(people):
    _run, request = open_request()
    with pytest.raises(InvalidDecision):
        approve(request, people.ann, stage="nope")
    with pytest.raises(InvalidDecision, match="Unknown action"):
        approval_decide(request=request, actor=people.ann, action="timeout")
    with pytest.raises(InvalidDecision, match="Unknown channel"):
        approve(request, people.ann, channel="system")


# --- reject needs a reason -----------------------------------------------------------------


def test_reject_requires_a_reason(people):
    run, request = open_request()
    with pytest.raises(InvalidDecision, match="reason is required") as invalid:
        approval_decide(request=request, actor=people.ann, action="reject", comment="  ")
    assert "comment" in invalid.value.errors
    approval_decide(request=request, actor=people.ann, action="reject", comment="no budget")
    result = finish(run)
    assert (result["status"], result["approved"], result["reason"]) == (
        "rejected",
        False,
        "no budget",
    )


# --- edit ----------------------------------------------------------------------------------


def test_edit_is_refused_unless_editable_and_valid(people):
    run, request = open_request()
    with pytest.raises(ApprovalNotAllowed) as refused:
        approval_decide(request=request, actor=people.ann, action="edit", value={"amount": 1})
    assert refused.value.rule == "not_editable"

    schema = {"type": "object", "properties": {"amount": {"type": "integer", "maximum": 500}}}
    run, request = open_request(editable=True, schema=schema)
    with pytest.raises(InvalidDecision) as invalid:
        approval_decide(request=request, actor=people.ann, action="edit", value={"amount": 900})
    assert "amount" in invalid.value.errors
    with pytest.raises(InvalidDecision, match="needs the changed value"):
        approval_decide(request=request, actor=people.ann, action="edit")
    approval_decide(request=request, actor=people.ann, action="edit", value={"amount": 90})
    result = finish(run)
    assert result["value"] == {"amount": 90}
    assert result["original_value"] == {"amount": 100}
    assert result["edited"] is True


# --- cancel --------------------------------------------------------------------------------


def test_cancel_by_requester_is_allowed_and_by_an_assignee_refused(people):
    run, request = open_request()
    with pytest.raises(ApprovalNotAllowed):
        approval_decide(request=request, actor=people.ann, action="cancel")
    approval_decide(request=request, actor=people.requester, action="cancel", comment="withdrawn")
    result = finish(run)
    assert (result["status"], result["reason"]) == ("cancelled", "withdrawn")
    assert request.stages.get().status == StageStatus.CANCELLED


# --- claim / unclaim -----------------------------------------------------------------------


def test_claim_reserves_the_stage_until_released(people):
    run, request = open_request()
    approval_decide(request=request, actor=people.ann, action="claim")
    with pytest.raises(ApprovalNotAllowed, match="claimed by ann") as refused:
        approve(request, people.bob)
    assert refused.value.rule == "claimed_by_other"
    with pytest.raises(ApprovalConflict, match="already claimed by ann"):
        approval_decide(request=request, actor=people.bob, action="claim")
    with pytest.raises(ApprovalNotAllowed) as refused:
        approval_decide(request=request, actor=people.bob, action="unclaim")
    assert refused.value.rule == "not_claimer"
    with pytest.raises(ApprovalNotAllowed):
        approval_decide(request=request, actor=people.outsider, action="claim")

    approval_decide(request=request, actor=people.ann, action="unclaim")
    approve(request, people.bob)
    assert finish(run)["decided_by"] == "bob"
    actions = list(request.decisions.values_list("action", "actor_name"))
    assert actions == [
        ("create", "rita"),
        ("claim", "ann"),
        ("unclaim", "ann"),
        ("approve", "bob"),
    ]


def test_decide_any_holder_may_release_someone_elses_claim(people):
    run, request = open_request()
    approval_decide(request=request, actor=people.ann, action="claim")
    approval_decide(request=request, actor=people.boss, action="unclaim", comment="ann is away")
    approve(request, people.bob)
    assert finish(run)["approved"]


# --- delegate / reassign -------------------------------------------------------------------


def test_assignee_delegates_to_someone_else(people):
    run, request = open_request()
    approval_decide(request=request, actor=people.ann, action="delegate", users=["fay"])
    stage = request.stages.get()
    assert list(stage.users.values_list("username", flat=True)) == ["fay"]
    assert not stage.groups.exists()
    with pytest.raises(ApprovalNotAllowed):  # ann handed it over
        approve(request, people.ann)
    approve(request, people.fay)
    assert finish(run)["decided_by"] == "fay"
    record = request.decisions.get(action="delegate")
    assert record.data["from"] == {"users": [], "groups": ["reviewers"]}
    assert record.data["to"] == {"users": ["fay"], "groups": []}


def test_reassign_is_refused_to_outsiders_and_to_the_requester(people):
    run, request = open_request()
    with pytest.raises(ApprovalNotAllowed):
        approval_decide(request=request, actor=people.outsider, action="reassign", users=["otto"])
    with pytest.raises(InvalidDecision, match="own requester"):
        approval_decide(request=request, actor=people.boss, action="reassign", users=["rita"])
    with pytest.raises(InvalidDecision, match="does not exist"):
        approval_decide(request=request, actor=people.boss, action="reassign", users=["nobody"])
    with pytest.raises(InvalidDecision, match="Name the users or groups"):
        approval_decide(request=request, actor=people.boss, action="reassign")
    approval_decide(request=request, actor=people.boss, action="reassign", groups=["finance"])
    approve(request, people.fay)
    assert finish(run)["decided_by"] == "fay"


# --- comment -------------------------------------------------------------------------------


def test_comments_from_those_involved_only(people):
    run, request = open_request()
    with pytest.raises(ApprovalNotAllowed):
        approval_decide(request=request, actor=people.outsider, action="comment", comment="hi")
    with pytest.raises(InvalidDecision):
        approval_decide(request=request, actor=people.ann, action="comment", comment="")
    approval_decide(request=request, actor=people.requester, action="comment", comment="urgent")
    approval_decide(request=request, actor=people.ann, action="comment", comment="looking")
    request.refresh_from_db()
    assert request.status == ApprovalStatus.PENDING  # a comment decides nothing
    approve(request, people.ann)
    finish(run)
    # Even a closed request takes comments (the discussion may go on).
    approval_decide(request=request, actor=people.bob, action="comment", comment="noted")
    assert list(request.decisions.filter(action="comment").values_list("comment", flat=True)) == [
        "urgent",
        "looking",
        "noted",
    ]


# --- a cancelled run cancels its open requests ---------------------------------------------


def test_cancelled_run_cancels_its_open_request(people):
    run, request = open_request()
    cancel(run.id, reason="customer withdrew")
    request.refresh_from_db()
    assert request.status == ApprovalStatus.CANCELLED
    assert request.stages.get().status == StageStatus.CANCELLED
    record = request.decisions.get(action="cancel")
    assert (record.channel, record.actor_id) == ("system", None)
    with pytest.raises(ApprovalConflict, match="already cancelled"):
        approve(request, people.ann)


def test_a_comment_with_a_nul_character_is_refused_and_nothing_changes(people):
    # Forms and the API refuse it first; this is the service called from Python.
    _run, request = open_request()
    with pytest.raises(InvalidDecision, match="NUL character") as refused:
        approval_decide(request=request, actor=people.bob, action="reject", comment="no\x00")
    assert refused.value.errors == {"comment": ["Null characters are not allowed."]}
    request.refresh_from_db()
    assert request.status == ApprovalStatus.PENDING
    assert not request.decisions.filter(action=Action.REJECT).exists()
