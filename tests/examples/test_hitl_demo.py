"""``manage.py hitl_demo``: accounts in their groups, runs of every example, queues with
work in them; running it twice creates nothing twice."""

from io import StringIO

import pytest
from django.contrib.auth import authenticate
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command

from approvals.selectors import approval_queue_for
from examples.demo import DEMO_PASSWORD, DEMO_RUNS
from workflows.models import RunStatus, WorkflowRun
from workflows.registry import registry

pytestmark = pytest.mark.django_db


def run_demo(*args: str) -> str:
    out = StringIO()
    call_command("hitl_demo", *args, stdout=out)
    return out.getvalue()


def test_demo_fills_the_queue_and_is_safe_to_run_twice():
    first = run_demo("--advance")

    groups = {
        u.username: sorted(u.groups.values_list("name", flat=True)) for u in User.objects.all()
    }
    assert groups["manager"] == ["managers"]
    assert groups["finance"] == ["finance"]
    assert groups["ceo"] == ["ceo"]
    assert groups["senior-manager"] == ["senior-managers"]
    assert authenticate(username="manager", password=DEMO_PASSWORD) is not None
    assert f"password '{DEMO_PASSWORD}'" in first
    # Every example has runs, and they are waiting for someone.
    examples = {d.name for d in registry.all() if d.module.startswith("examples.")}
    assert {r.workflow for r in DEMO_RUNS} == examples
    assert WorkflowRun.objects.count() == len(DEMO_RUNS)
    assert set(WorkflowRun.objects.values_list("status", flat=True)) == {RunStatus.WAITING}
    assert approval_queue_for(User.objects.get(username="manager")).count() == 5
    assert approval_queue_for(User.objects.get(username="reviewer")).count() == 1
    assert "hitl_notify hitl-001.blocking-promise" in first

    User.objects.filter(username="manager").update(password="changed")
    second = run_demo()

    assert User.objects.count() == 8
    assert WorkflowRun.objects.count() == len(DEMO_RUNS)
    assert "password unchanged" in second
    assert User.objects.get(username="manager").password == "changed"
    # Without --advance it says a worker is needed, unless one is running beside it (dev up).
    assert "Start a worker" in second
    assert "Start a worker" not in run_demo("--worker-running")


def test_production_settings_refuse_the_demo_accounts(settings):
    # As hitlproject.settings_production sets it: no staff with a published password.
    settings.HITL_DEMO_ACCOUNTS = False
    with pytest.raises(CommandError, match="published password"):
        run_demo()
    assert not User.objects.exists() and not WorkflowRun.objects.exists()
