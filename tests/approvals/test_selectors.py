"""The reviewer's queue and the request's progress."""

from datetime import timedelta

import pytest

from approvals.models import ApprovalRequest
from approvals.selectors import approval_queue_for, value_diff
from approvals.services import approval_decide
from tests.approvals.conftest import start_and_wait
from workflows import clock

pytestmark = pytest.mark.django_db


def titles(queryset):
    return sorted(r.title for r in queryset)


def test_queue_assigned_groups_claimed_and_overdue(people):
    start_and_wait("approvals-simple", {"title": "group", "requester": "rita"})
    start_and_wait(
        "approvals-simple",
        {"title": "personal", "groups": [], "users": ["fay"], "requester": "rita"},
    )
    start_and_wait("deadline", {"on_timeout": "reject"})  # managers, 1 h deadline
    by_ann = start_and_wait("approvals-simple", {"title": "ann's own", "requester": "ann"})

    assert titles(approval_queue_for(people.ann)) == ["Deadline test", "group"]
    assert titles(approval_queue_for(people.fay)) == ["personal"]
    assert titles(approval_queue_for(people.fay, scope="assigned")) == ["personal"]
    assert titles(approval_queue_for(people.carl, scope="groups")) == ["ann's own", "group"]
    assert titles(approval_queue_for(people.outsider)) == []

    # Claimed by me: in my "claimed" scope, with the flag.
    group = ApprovalRequest.objects.get(title="group")
    approval_decide(request=group, actor=people.bob, action="claim")
    claimed = approval_queue_for(people.bob, scope="claimed")
    assert titles(claimed) == ["group"] and claimed.get().claimed_by_me

    # Overdue: the deadline passed (before the sweeper got to it).
    clock.travel(timedelta(hours=2))
    overdue = approval_queue_for(people.ann, scope="overdue")
    assert titles(overdue) == ["Deadline test"] and overdue.get().is_overdue
    assert next(iter(approval_queue_for(people.ann))).title == "Deadline test"  # most urgent first

    # Once ann approved a request, it leaves her queue.
    approval_decide(request=by_ann.approvals.get(), actor=people.bob, action="approve")
    approval_decide(request=group, actor=people.boss, action="unclaim")
    approval_decide(request=group, actor=people.carl, action="approve")
    assert titles(approval_queue_for(people.ann)) == ["Deadline test"]


def test_queue_leaves_out_requests_i_already_approved_a_stage_of(people):
    run = start_and_wait("expense", {"amount": 5000, "requested_by": "rita"})
    request = run.approvals.get()
    people.carl.groups.add(*people.ann.groups.filter(name="managers"))
    assert titles(approval_queue_for(people.carl)) == ["Expense of 5000"]
    approval_decide(request=request, actor=people.carl, action="approve")
    # Now at finance, where carl is a member too, but he approved the manager stage.
    assert titles(approval_queue_for(people.carl)) == []
    assert titles(approval_queue_for(people.fay)) == ["Expense of 5000"]


def test_value_diff_paths():
    old = {"amount": 5000, "lines": [{"sku": "a"}], "note": "x"}
    new = {"amount": 4500, "lines": [{"sku": "b"}], "extra": True}
    assert value_diff(old, new) == [
        {"path": "amount", "old": 5000, "new": 4500, "change": "changed"},
        {"path": "extra", "old": None, "new": True, "change": "added"},
        {"path": "lines[0].sku", "old": "a", "new": "b", "change": "changed"},
        {"path": "note", "old": "x", "new": None, "change": "removed"},
    ]
    assert value_diff(1, 1) == []


def test_reviewers_see_the_runs_they_are_asked_to_decide(people):
    from workflows.permissions import can_view_run, runs_visible_to

    run = start_and_wait("approvals-simple", {"requester": "rita"})
    assert can_view_run(people.ann, run)  # a reviewer (group member)
    assert can_view_run(people.requester, run)
    assert can_view_run(people.boss, run)  # approvals.decide_any
    assert not can_view_run(people.outsider, run)
    assert list(runs_visible_to(people.ann)) == [run]


def test_a_run_is_listed_once_however_many_ways_its_reviewer_is_involved(people):
    from workflows.permissions import runs_visible_to

    # ann requested it, is named on the stage and is in its group; bob comments on it.
    run = start_and_wait(
        "approvals-simple", {"requester": "ann", "users": ["ann", "bob"], "groups": ["reviewers"]}
    )
    approval_decide(request=run.approvals.get(), actor=people.bob, action="comment", comment="ok")
    other = start_and_wait("approvals-simple", {"requester": "rita", "groups": ["finance"]})
    for user in (people.ann, people.bob):
        assert list(runs_visible_to(user)) == [run] and runs_visible_to(user).count() == 1
    assert list(runs_visible_to(people.carl).order_by("created_at")) == [run, other]
    assert list(runs_visible_to(people.outsider)) == []
