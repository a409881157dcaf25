"""Who may see a request is read from the access rows (``approvals.access``); these tests hold
them to the definition they replace, the joins over stages, assignments, audit, requester and
run, after every kind of change the services make, and check the changes a person notices."""

import importlib
import io
from datetime import timedelta

import pytest
from django.apps import apps
from django.contrib.auth.models import Group, User
from django.core.management import call_command
from django.db.models import Q

from approvals.models import ApprovalAccess, ApprovalRequest
from approvals.selectors import approvals_visible_to
from approvals.services import approval_decide
from tests.approvals.conftest import make_user
from workflows import clock, start
from workflows.models import WorkflowRun
from workflows.permissions import runs_visible_to
from workflows.sweeper import sweep
from workflows.testing import run_until_idle

pytestmark = pytest.mark.django_db


def involved_by_joins(user: User) -> set:
    """The definition the access rows replace (as ``approvals_visible_to`` read it before)."""
    return set(
        ApprovalRequest.objects.filter(
            Q(stages__users=user)
            | Q(stages__groups__in=user.groups.all())
            | Q(decisions__actor=user)
            | Q(requester=user)
            | Q(run__created_by=user)
        ).values_list("pk", flat=True)
    )


def runs_by_joins(user: User) -> set:
    requests = ApprovalRequest.objects.filter(pk__in=involved_by_joins(user))
    own = WorkflowRun.objects.filter(created_by=user)
    return set(requests.values_list("run_id", flat=True)) | set(own.values_list("pk", flat=True))


def assert_same_as_the_joins() -> None:
    for user in User.objects.all():
        if user.has_perm("approvals.decide_any"):
            continue  # sees every request, without the access rows
        assert set(approvals_visible_to(user).values_list("pk", flat=True)) == involved_by_joins(
            user
        ), user.username
        assert set(runs_visible_to(user).values_list("pk", flat=True)) == runs_by_joins(user), (
            user.username
        )


def visible(user: User) -> set:
    return set(approvals_visible_to(User.objects.get(pk=user.pk)).values_list("title", flat=True))


def waiting_request(name: str, data: dict, starter: User) -> ApprovalRequest:
    run = start(name, data, created_by=starter)
    run_until_idle()
    return ApprovalRequest.objects.get(run=run)


def test_access_follows_assignment_decisions_reassignment_and_groups(people):
    expense = waiting_request(
        "expense", {"amount": 20000, "requested_by": "rita"}, starter=people.ceo
    )
    simple = waiting_request(
        "approvals-simple",
        {"title": "Laptop", "users": ["fay"], "groups": [], "requester": "rita"},
        starter=people.requester,
    )
    assert_same_as_the_joins()
    # Every stage's assignees see it from the start, queued stages included (finance, ceo).
    assert "Expense of 20000" in visible(people.fay) and "Expense of 20000" in visible(people.ceo)
    assert visible(people.outsider) == set()
    assert visible(people.fay) == {"Expense of 20000", "Laptop"}

    approval_decide(request=expense, actor=people.ann, action="approve")
    assert_same_as_the_joins()

    # Finance handed to otto alone: fay (finance only, never acted) no longer sees it.
    approval_decide(
        request=expense, actor=people.boss, action="reassign", stage="finance", users=["otto"]
    )
    assert "Expense of 20000" in visible(people.outsider)
    assert "Expense of 20000" not in visible(people.fay)
    assert_same_as_the_joins()

    # otto delegates to bob; having acted, otto keeps seeing it.
    approval_decide(request=expense, actor=people.outsider, action="delegate", users=["bob"])
    assert "Expense of 20000" in visible(people.outsider)
    assert_same_as_the_joins()

    # A newcomer to the managers group sees what the group is named on, past included.
    newcomer = make_user("nina")
    assert visible(newcomer) == set()
    newcomer.groups.add(Group.objects.get(name="managers"))
    assert visible(newcomer) == {"Expense of 20000"}
    assert_same_as_the_joins()

    # Someone who may decide anything comments, then loses that right: having acted, they
    # still see the request, like the expense they reassigned above.
    approval_decide(request=simple, actor=people.boss, action="comment", comment="Checked")
    people.boss.user_permissions.clear()
    assert visible(people.boss) == {"Laptop", "Expense of 20000"}

    approval_decide(request=simple, actor=people.fay, action="reject", comment="Not now")
    assert_same_as_the_joins()


def test_escalation_moves_access_to_the_escalation_group(people):
    start(
        "deadline",
        {"on_timeout": "escalate", "escalate_to": "senior-managers"},
        created_by=people.requester,
    )
    run_until_idle()
    assert visible(people.ann) == {"Deadline test"} and visible(people.seniors) == set()

    clock.travel(timedelta(hours=1, minutes=1))
    sweep()
    run_until_idle()

    # The stage now names senior-managers only: ann (managers, never acted) no longer sees it.
    assert visible(people.seniors) == {"Deadline test"} and visible(people.ann) == set()
    assert_same_as_the_joins()


def test_the_migration_fills_in_access_for_existing_requests(people):
    expense = waiting_request(
        "expense", {"amount": 2000, "requested_by": "rita"}, starter=people.ceo
    )
    approval_decide(request=expense, actor=people.ann, action="approve")
    approval_decide(
        request=expense, actor=people.boss, action="reassign", stage="finance", users=["otto"]
    )
    waiting_request("approvals-simple", {"users": ["fay"], "requester": "rita"}, people.requester)
    kept = set(ApprovalAccess.objects.values_list("request_id", "run_id", "user_id", "group_id"))
    ApprovalAccess.objects.all().delete()  # as before the migration: no access rows

    migration = importlib.import_module("approvals.migrations.0005_approval_access_backfill")
    migration.backfill(apps, None)

    filled = set(ApprovalAccess.objects.values_list("request_id", "run_id", "user_id", "group_id"))
    assert filled == kept
    assert_same_as_the_joins()


def test_the_rebuild_command_restores_rows_written_without_them(people):
    # As a worker of the version before the access rows would leave a request: no rows.
    expense = waiting_request(
        "expense", {"amount": 2000, "requested_by": "rita"}, starter=people.ceo
    )
    waiting_request("approvals-simple", {"users": ["fay"], "requester": "rita"}, people.requester)
    ApprovalAccess.objects.filter(request=expense).delete()
    assert "Expense of 2000" not in visible(people.ann)
    out = io.StringIO()

    call_command("hitl_rebuild_access", stdout=out)

    assert "Expense of 2000" in visible(people.ann)
    assert out.getvalue().strip() == (
        "Rebuilt the access rows and queue entries of 2 approval requests."
    )
    assert_same_as_the_joins()
