"""Fixtures for the seed-scenario tests: the demo accounts (the same ones ``hitl_demo``
creates) and helpers to decide approvals as a reviewer would."""

import pytest
from django.contrib.auth.models import User

from approvals.models import ApprovalRequest, ApprovalStatus
from approvals.services import approval_decide
from examples.demo import ensure_accounts
from workflows import start
from workflows.models import WorkflowRun
from workflows.testing import run_until_idle


@pytest.fixture(autouse=True)
def _test_settings(settings):
    # The machine's environment must not add Slack or webhook channels to these runs.
    settings.HITL_NOTIFICATION_CHANNELS = ["email"]
    # The demo accounts get real passwords; the default hasher spends ~0.5 s on each.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def accounts(db) -> dict[str, User]:
    ensure_accounts()
    return {user.username: user for user in User.objects.all()}


def start_and_idle(workflow: str, data: dict, **kwargs) -> WorkflowRun:
    run = start(workflow, data, **kwargs)
    run_until_idle()
    run.refresh_from_db()
    return run


def pending_request(run: WorkflowRun, key: str | None = None) -> ApprovalRequest:
    query = ApprovalRequest.objects.filter(run=run, status=ApprovalStatus.PENDING)
    if key is not None:
        query = query.filter(key=key)
    return query.get()


def decide(run: WorkflowRun, user: User, action: str = "approve", **kwargs) -> WorkflowRun:
    """``user`` acts on the run's open request; the run then advances as far as it goes."""
    approval_decide(request=pending_request(run), actor=user, action=action, **kwargs)
    run_until_idle()
    run.refresh_from_db()
    return run
