"""Races on PostgreSQL with real threads: a decision against its own deadline, many times.

Exactly one outcome per trial, recorded once, and the run continues with that outcome.
"""

import json
import threading
from datetime import timedelta

import pytest
from django.conf import settings
from django.contrib.auth.models import Group, User
from django.db import connection

import tests.approvals.flows  # noqa: F401  (registers the "deadline" workflow)
from approvals.errors import ApprovalConflict
from approvals.models import Action, ApprovalRequest, DecisionRecord
from approvals.services import approval_decide
from tests.conftest import requires_postgres
from workflows import clock, start
from workflows.models import RunStatus, WaitPoint
from workflows.sweeper import fire_due_waits
from workflows.testing import run_until_idle

from .conftest import LARGE

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

        threads = [threading.Thread(target=decide), threading.Thread(target=expire)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
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

    print("\nDecision vs deadline:", json.dumps({"trials": TRIALS, **outcomes}))
    out = settings.DATA_DIR / "reliability"
    out.mkdir(exist_ok=True)
    (out / "decision_vs_deadline.json").write_text(json.dumps({"trials": TRIALS, **outcomes}))
