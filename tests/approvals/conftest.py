import pytest
from django.contrib.auth.models import Group, Permission, User

import tests.approvals.flows as flows
from workflows import start
from workflows.testing import run_until_idle


@pytest.fixture(autouse=True)
def _fresh_calls():
    flows.calls.clear()


@pytest.fixture(autouse=True)
def _email_only(settings):
    # Tests choose their channels; the environment of the machine running them must not.
    settings.HITL_NOTIFICATION_CHANNELS = ["email"]
    settings.HITL_BASE_URL = "http://testserver"


def make_user(username, *groups, perms=(), email=True):
    user = User.objects.create_user(username, email=f"{username}@example.com" if email else "")
    for name in groups:
        user.groups.add(Group.objects.get_or_create(name=name)[0])
    for codename in perms:
        user.user_permissions.add(Permission.objects.get(codename=codename))
    return User.objects.get(pk=user.pk)  # fresh: no stale permission cache


@pytest.fixture
def people(db):
    """A small company: requester, two reviewers, managers, finance, a CEO, an auditor."""

    class People:
        requester = make_user("rita")
        ann = make_user("ann", "reviewers", "managers")
        bob = make_user("bob", "reviewers", "managers")
        carl = make_user("carl", "reviewers", "finance")
        fay = make_user("fay", "finance")
        ceo = make_user("ceo")
        outsider = make_user("otto")
        boss = make_user("boss", perms=["decide_any"])
        seniors = make_user("sam", "senior-managers")

    return People


def start_and_wait(name, data):
    """Start a run and advance it until it waits (or finishes)."""
    run = start(name, data)
    run_until_idle()
    run.refresh_from_db()
    return run
