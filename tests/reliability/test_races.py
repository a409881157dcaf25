"""Races on PostgreSQL with real threads, many trials each: a decision against its own deadline,
and two reviewers deciding one stage at once from the API and from the admin.

Exactly one outcome per trial, recorded once, and the run continues with that outcome.
"""

import threading
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.db import connection
from django.test import Client
from rest_framework.authtoken.models import Token

import tests.approvals.flows  # noqa: F401  (registers the "deadline" workflow)
from approvals.errors import ApprovalConflict
from approvals.models import Action, ApprovalRequest, DecisionRecord
from approvals.services import approval_decide
from tests.conftest import requires_postgres, run_in_threads
from workflows import clock, start
from workflows.models import RunStatus, WaitPoint
from workflows.sweeper import fire_due_waits
from workflows.testing import run_until_idle

from .conftest import LARGE
from .figures import record

pytestmark = [requires_postgres, pytest.mark.django_db(transaction=True)]

TRIALS = 100 if LARGE else 20


def test_a_decision_racing_its_deadline_has_exactly_one_outcome():
    manager = User.objects.create_user("mia")
    manager.groups.add(Group.objects.get_or_create(name="managers")[0])
    outcomes = {"approved": 0, "timed_out": 0}
    for trial in range(TRIALS):
        run = start("deadline", {"on_timeout": "reject"})
        run_until_idle()
        request = ApprovalRequest.objects.get(run=run)
        deadline = request.current_stage.deadline
        barrier = threading.Barrier(2)
        errors: list[BaseException] = []

        def decide(request_id=request.pk, barrier=barrier, errors=errors):
            barrier.wait()
            try:
                approval_decide(request=request_id, actor=manager, action="approve")
            except ApprovalConflict:
                pass  # the deadline won: a clean, reported loss
            except BaseException as exc:  # anything else is a bug
                errors.append(exc)
            finally:
                connection.close()

        def expire(now=deadline + timedelta(seconds=1), barrier=barrier, errors=errors):
            barrier.wait()
            try:
                fire_due_waits(now)
            except BaseException as exc:
                errors.append(exc)
            finally:
                connection.close()

        run_in_threads(decide, expire, timeout=30)
        assert errors == [], f"trial {trial}: {errors!r}"

        request.refresh_from_db()
        decisive = DecisionRecord.objects.filter(
            request=request, action__in=[Action.APPROVE, Action.TIMEOUT]
        )
        assert decisive.count() == 1, f"trial {trial}: {list(decisive.values('action'))}"
        assert request.status in ("approved", "timed_out")
        assert WaitPoint.objects.get(pk=request.wait_id).status != "open"
        clock.travel(timedelta(hours=2))  # let the run pass its own deadline checks too
        run_until_idle()
        clock.reset()
        run.refresh_from_db()
        assert run.status == RunStatus.COMPLETED
        assert run.result["status"] == request.status
        outcomes[request.status] += 1

    record("decision_vs_deadline", "Decision vs deadline", {"trials": TRIALS, **outcomes})


def test_api_and_admin_decisions_racing_on_one_stage_have_exactly_one_winner():
    """Two reviewers decide one stage at the same moment, one through the DRF API and one
    through the admin's decision form: every trial ends with one decision recorded, the other
    channel answers 409 naming the winner, and the run continues with the winner's outcome."""
    reviewers = Group.objects.get_or_create(name="reviewers")[0]
    view = Permission.objects.get(codename="view_approvalrequest")
    api_user = User.objects.create_user("ana")
    admin_user = User.objects.create_user("adam", is_staff=True)
    admin_user.user_permissions.add(view)
    for user in (api_user, admin_user):
        user.groups.add(reviewers)
    token = Token.objects.create(user=api_user).key
    wins = {"api": 0, "admin": 0}

    for trial in range(TRIALS):
        run = start("approvals-simple", {"title": f"Race {trial}"})
        run_until_idle()
        request = ApprovalRequest.objects.get(run=run)
        # Alternate who approves and who rejects: the conflict must not depend on the action.
        api_action, admin_action = ("approve", "reject") if trial % 2 else ("reject", "approve")
        barrier = threading.Barrier(2)
        responses: dict[str, object] = {}

        def via_api(request_id=request.pk, action=api_action, barrier=barrier, out=responses):
            client = Client(HTTP_AUTHORIZATION=f"Token {token}")
            barrier.wait(timeout=30)
            try:
                out["api"] = client.post(
                    f"/api/v1/approvals/{request_id}/decide/",
                    {"action": action, "comment": "from the API"},
                    content_type="application/json",
                )
            finally:
                connection.close()

        def via_admin(request_id=request.pk, action=admin_action, barrier=barrier, out=responses):
            client = Client()
            client.force_login(admin_user)
            barrier.wait(timeout=30)
            try:
                out["admin"] = client.post(
                    f"/admin/approvals/approvalrequest/{request_id}/decide/",
                    {"action": action, f"{action}-comment": "from the admin"},
                )
            finally:
                connection.close()

        run_in_threads(via_api, via_admin)

        api, admin = responses["api"], responses["admin"]
        api_won = api.status_code == 200
        admin_won = admin.status_code == 302  # the admin redirects back after a decision
        statuses = f"api {api.status_code}, admin {admin.status_code}"
        assert api_won != admin_won, f"trial {trial}: {statuses}"
        winner, loser = ("ana", admin) if api_won else ("adam", api)
        assert loser.status_code == 409, f"trial {trial}: loser answered {loser.status_code}"
        assert winner in loser.content.decode(), f"trial {trial}: the 409 does not name {winner}"

        decisive = DecisionRecord.objects.filter(
            request=request, action__in=[Action.APPROVE, Action.REJECT]
        )
        assert list(decisive.values_list("actor__username", flat=True)) == [winner]
        run_until_idle()
        run.refresh_from_db()
        assert run.status == RunStatus.COMPLETED
        assert run.result["decided_by"] == winner
        wins["api" if api_won else "admin"] += 1

    record("api_vs_admin", "API vs admin on one stage", {"trials": TRIALS, "wins": wins})
