"""Who a request waits for is read from its queue entries and ``due_at`` (``approvals.queue``);
these tests hold the queues to the definition they replace, the joins over each request's open
stage, its assignees and its claim, after every kind of change the services make, and check
the changes a reviewer notices."""

import importlib
import io
from datetime import timedelta

import pytest
from django.apps import apps
from django.contrib.auth.models import Group, User
from django.core.management import call_command
from django.db.models import Q

from approvals import queue
from approvals.models import (
    APPROVING_ACTIONS,
    ApprovalRequest,
    ApprovalStatus,
    DecisionRecord,
    QueueEntry,
    StageStatus,
)
from approvals.selectors import QUEUE_SCOPES, approval_queue_for
from approvals.services import approval_decide
from tests.approvals.conftest import make_user
from workflows import cancel, clock, start
from workflows.sweeper import sweep
from workflows.testing import run_until_idle

pytestmark = pytest.mark.django_db


def queue_by_joins(user: User, scope: str) -> set:
    """The definition the queue entries replace (as ``waiting_for_q`` read it before them)."""
    ways = {
        "assigned": Q(current_stage__users=user),
        "groups": Q(current_stage__groups__in=user.groups.all()),
        "claimed": Q(current_stage__claimed_by=user),
    }
    every_way = ways["assigned"] | ways["groups"] | ways["claimed"]
    where = ways.get(scope, every_way)
    if scope == "overdue":
        where &= Q(current_stage__deadline__lt=clock.now())
    approved = DecisionRecord.objects.filter(actor=user, action__in=APPROVING_ACTIONS)
    return set(
        ApprovalRequest.objects.filter(
            where, status=ApprovalStatus.PENDING, current_stage__status=StageStatus.OPEN
        )
        .exclude(requester=user)
        .exclude(pk__in=approved.values("request_id"))
        .values_list("pk", flat=True)
    )


def assert_same_as_the_joins() -> None:
    for user in User.objects.all():
        for scope in QUEUE_SCOPES:
            found = set(approval_queue_for(user, scope=scope).values_list("pk", flat=True))
            assert found == queue_by_joins(user, scope), (user.username, scope)
    for request in ApprovalRequest.objects.select_related("current_stage"):
        waiting = request.is_open and request.current_stage.is_open
        assert request.due_at == (request.current_stage.deadline if waiting else None), request
        if not request.is_open:
            assert not QueueEntry.objects.filter(request=request).exists(), request


def queue_titles(user: User, scope: str = "all") -> list[str]:
    return list(approval_queue_for(user, scope=scope).values_list("title", flat=True))


def waiting_request(name: str, data: dict) -> ApprovalRequest:
    run = start(name, data)
    run_until_idle()
    return ApprovalRequest.objects.get(run=run)


def test_queues_follow_stages_claims_reassignment_and_closing(people):
    expense = waiting_request("expense", {"amount": 20000, "requested_by": "rita"})
    simple = waiting_request(
        "approvals-simple", {"title": "Laptop", "users": ["fay"], "requester": "rita"}
    )
    assert_same_as_the_joins()
    # Only the open stage's assignees are waited for: finance's turn has not come yet.
    assert queue_titles(people.ann) == ["Expense of 20000", "Laptop"]  # no deadlines: oldest first
    assert queue_titles(people.fay) == ["Laptop"]
    assert queue_titles(people.fay, "assigned") == ["Laptop"]
    assert queue_titles(people.fay, "groups") == []

    # Claimed: in the claimer's "claimed" scope; released, out of it again.
    approval_decide(request=expense, actor=people.bob, action="claim")
    assert queue_titles(people.bob, "claimed") == ["Expense of 20000"]
    assert approval_queue_for(people.bob, scope="claimed").get().claimed_by_me
    assert_same_as_the_joins()
    approval_decide(request=expense, actor=people.bob, action="unclaim")
    assert queue_titles(people.bob, "claimed") == []
    assert_same_as_the_joins()

    # The manager stage passes: the request moves from the managers' queues to finance's.
    approval_decide(request=expense, actor=people.ann, action="approve")
    assert "Expense of 20000" not in queue_titles(people.bob)
    assert "Expense of 20000" in queue_titles(people.fay, "groups")
    assert_same_as_the_joins()

    # Finance handed to otto alone, who delegates to bob (who has not approved it).
    approval_decide(
        request=expense, actor=people.boss, action="reassign", stage="finance", users=["otto"]
    )
    assert "Expense of 20000" not in queue_titles(people.fay)
    assert queue_titles(people.outsider, "assigned") == ["Expense of 20000"]
    assert_same_as_the_joins()
    approval_decide(request=expense, actor=people.outsider, action="delegate", users=["bob"])
    assert queue_titles(people.outsider) == [] and "Expense of 20000" in queue_titles(people.bob)
    assert_same_as_the_joins()

    # A claimer who approves passes the stage: the CEO's turn.
    approval_decide(request=expense, actor=people.bob, action="claim")
    approval_decide(request=expense, actor=people.bob, action="approve")
    assert queue_titles(people.ceo) == ["Expense of 20000"]
    assert_same_as_the_joins()

    # On a stage needing two approvals, a claimer who approves releases the claim: the stage
    # stays open for the others, and leaves the claimer's queue (one approval per person).
    pair = waiting_request(
        "approvals-simple", {"title": "Two keys", "required": 2, "requester": "rita"}
    )
    approval_decide(request=pair, actor=people.bob, action="claim")
    approval_decide(request=pair, actor=people.bob, action="approve")
    assert "Two keys" not in queue_titles(people.bob)
    assert queue_titles(people.bob, "claimed") == []
    # (What the admin's assignee filter reads, which has no "approved before" rule.)
    assert not QueueEntry.objects.filter(request=pair, claimed=True).exists()
    assert "Two keys" in queue_titles(people.carl)
    assert_same_as_the_joins()
    approval_decide(request=pair, actor=people.carl, action="approve")

    # Closed requests wait for no one: rejected, and cancelled with their run.
    approval_decide(request=simple, actor=people.fay, action="reject", comment="Not now")
    cancel(expense.run_id)
    run_until_idle()
    assert queue_titles(people.ceo) == [] and queue_titles(people.fay) == []
    assert not QueueEntry.objects.exists()
    assert_same_as_the_joins()


def test_joining_or_leaving_a_group_changes_the_queue_at_once(people):
    waiting_request("approvals-simple", {"title": "For reviewers", "requester": "rita"})
    newcomer = make_user("nina")
    assert queue_titles(newcomer) == []

    reviewers = Group.objects.get(name="reviewers")
    newcomer.groups.add(reviewers)
    assert queue_titles(newcomer, "groups") == ["For reviewers"]
    newcomer.groups.remove(reviewers)
    assert queue_titles(newcomer) == []


def test_deadlines_order_the_queue_and_escalation_moves_it(people):
    late = waiting_request("deadline", {"on_timeout": "escalate", "escalate_to": "senior-managers"})
    waiting_request("approvals-simple", {"title": "No deadline", "groups": ["managers"]})
    assert late.current_stage.deadline is not None
    # A deadline first, no deadline last; nothing overdue yet.
    assert queue_titles(people.ann) == ["Deadline test", "No deadline"]
    assert queue_titles(people.ann, "overdue") == []

    clock.travel(timedelta(minutes=61))
    assert queue_titles(people.ann, "overdue") == ["Deadline test"]
    assert approval_queue_for(people.ann, scope="overdue").get().is_overdue
    assert_same_as_the_joins()

    # The sweeper escalates: senior managers have it with a fresh deadline, managers not.
    sweep()
    run_until_idle()
    assert queue_titles(people.seniors) == ["Deadline test"]
    assert queue_titles(people.ann) == ["No deadline"]
    assert queue_titles(people.seniors, "overdue") == []
    assert_same_as_the_joins()

    # The second deadline times the request out: out of every queue.
    clock.travel(timedelta(minutes=61))
    sweep()
    run_until_idle()
    late.refresh_from_db()
    assert late.status == ApprovalStatus.TIMED_OUT and late.due_at is None
    assert queue_titles(people.seniors) == []
    assert_same_as_the_joins()


def test_the_migration_fills_in_queue_entries_for_pending_requests(people):
    expense = waiting_request("expense", {"amount": 2000, "requested_by": "rita"})
    approval_decide(request=expense, actor=people.ann, action="approve")
    approval_decide(request=expense, actor=people.carl, action="claim")
    waiting_request("deadline", {"on_timeout": "reject"})
    done = waiting_request("approvals-simple", {"users": ["fay"], "requester": "rita"})
    approval_decide(request=done, actor=people.fay, action="approve")
    kept = set(QueueEntry.objects.values_list("request_id", "user_id", "group_id", "claimed"))
    due = dict(ApprovalRequest.objects.values_list("pk", "due_at"))
    assert any(due.values()) and any(claimed for *_, claimed in kept)
    # As before the migration: no entries, no due times.
    QueueEntry.objects.all().delete()
    ApprovalRequest.objects.update(due_at=None)

    migration = importlib.import_module("approvals.migrations.0009_queue_entries_backfill")
    migration.backfill(apps, None)

    filled = set(QueueEntry.objects.values_list("request_id", "user_id", "group_id", "claimed"))
    assert filled == kept
    assert dict(ApprovalRequest.objects.values_list("pk", "due_at")) == due
    assert_same_as_the_joins()


def test_the_rebuild_command_restores_queue_entries_written_without_them(people):
    # As a worker of the version before the queue entries would leave a request: none.
    waiting = waiting_request("approvals-simple", {"title": "Laptop", "requester": "rita"})
    QueueEntry.objects.filter(request=waiting).delete()
    assert queue_titles(people.ann) == []

    call_command("hitl_rebuild_access", stdout=io.StringIO())

    assert queue_titles(people.ann) == ["Laptop"]
    assert_same_as_the_joins()
    # Rebuilding changes nothing that is already right.
    before = set(QueueEntry.objects.values_list("request_id", "user_id", "group_id", "claimed"))
    queue.rebuild(ApprovalRequest.objects.values_list("pk", flat=True))
    after = set(QueueEntry.objects.values_list("request_id", "user_id", "group_id", "claimed"))
    assert after == before
