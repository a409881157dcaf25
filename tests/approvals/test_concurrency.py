"""Concurrent decisions on one stage: exactly one wins, every other gets ApprovalConflict."""

import functools
import threading

import pytest
from django.db import connection

from approvals.errors import ApprovalConflict
from approvals.models import APPROVING_ACTIONS, ApprovalRequest, ApprovalStatus, DecisionRecord
from approvals.services import approval_decide
from tests.approvals.conftest import make_user, start_and_wait
from tests.conftest import requires_postgres, run_in_threads
from workflows.models import RunStatus
from workflows.testing import run_until_idle

THREADS = 20


@requires_postgres
@pytest.mark.django_db(transaction=True)
def test_twenty_threads_decide_one_stage_exactly_one_wins():
    reviewers = [make_user(f"reviewer{i}", "reviewers") for i in range(THREADS)]
    make_user("rita")
    run = start_and_wait("approvals-simple", {"requester": "rita"})
    request_id = ApprovalRequest.objects.get(run=run).pk

    barrier = threading.Barrier(THREADS)
    outcomes: list[tuple[str, str]] = []
    lock = threading.Lock()

    def decide(user, index):
        try:
            barrier.wait(timeout=30)
            # Half approve, half reject: the conflict does not depend on the action.
            if index % 2:
                approval_decide(request=request_id, actor=user, action="reject", comment="no")
            else:
                approval_decide(request=request_id, actor=user, action="approve")
            outcome = ("won", user.username)
        except ApprovalConflict as exc:
            outcome = ("conflict", str(exc))
        except Exception as exc:  # anything else is a failure of the test, reported below
            outcome = ("error", f"{type(exc).__name__}: {exc}")
        finally:
            connection.close()
        with lock:
            outcomes.append(outcome)

    run_in_threads(*(functools.partial(decide, user, i) for i, user in enumerate(reviewers)))

    errors = [o for o in outcomes if o[0] == "error"]
    assert errors == []
    winners = [who for kind, who in outcomes if kind == "won"]
    conflicts = [message for kind, message in outcomes if kind == "conflict"]
    assert len(winners) == 1
    assert len(conflicts) == THREADS - 1
    # Every loser is told who decided first.
    assert all(f"by {winners[0]}" in message for message in conflicts), conflicts[:3]

    request = ApprovalRequest.objects.get(pk=request_id)
    assert request.status in (ApprovalStatus.APPROVED, ApprovalStatus.REJECTED)
    decisions = DecisionRecord.objects.filter(
        request=request, action__in=[*APPROVING_ACTIONS, "reject"]
    )
    assert list(decisions.values_list("actor_name", flat=True)) == winners

    run_until_idle()
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED
    assert run.result["decided_by"] == winners[0]
