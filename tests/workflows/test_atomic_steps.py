"""``ctx.step(..., atomic=True)``: the step's own writes to the database commit together with
its record, exactly once, whatever happens to the attempt or the worker."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model

from workflows import cancel, clock, start
from workflows.models import RunEvent, RunStatus, Step, StepStatus
from workflows.registry import registry, workflow
from workflows.testing import run_until_idle

pytestmark = pytest.mark.django_db

User = get_user_model()


class WorkerDied(BaseException):
    """Stands in for SIGKILL: nothing in the engine catches it, the attempt just ends."""


@pytest.fixture
def flow():
    """Register a workflow for one test: ``flow(name)(fn)``."""
    names = []

    def register(name):
        names.append(name)
        return workflow(name)

    yield register
    for name in names:
        registry.unregister(name)


def test_a_failed_attempt_leaves_no_writes_and_the_retry_commits_exactly_once(flow):
    attempts = []

    def sign_up(username):
        User.objects.create(username=username)
        attempts.append(username)
        if len(attempts) == 1:
            raise RuntimeError("mail server said no")  # after the write: it must roll back
        return User.objects.get(username=username).pk

    @flow("atomic-signup")
    def signup(ctx, data):
        return ctx.step("sign-up", sign_up, data["username"], atomic=True, retries=1, backoff=5)

    run = start("atomic-signup", {"username": "mia"})
    assert run_until_idle() == ["retry"]
    assert not User.objects.filter(username="mia").exists()  # the failed attempt's write is gone
    step = Step.objects.get(run=run, name="sign-up")
    assert (step.status, step.attempts, step.error_type) == (
        StepStatus.RETRYING,
        1,
        "RuntimeError",
    )

    clock.travel(timedelta(seconds=6))
    assert run_until_idle() == ["completed"]
    run.refresh_from_db()
    assert User.objects.filter(username="mia").count() == 1
    assert run.result == User.objects.get(username="mia").pk
    step.refresh_from_db()
    assert (step.status, step.attempts, step.error) == (StepStatus.COMPLETED, 2, "")
    assert RunEvent.objects.filter(run=run, type="step.finished").count() == 1


def test_a_worker_dying_inside_an_atomic_step_leaves_nothing_and_the_step_runs_again(flow):
    calls = []

    def note(value):
        calls.append(value)
        return value

    def transfer(amount):
        User.objects.create(username=f"ledger-{amount}")
        calls.append("transfer")
        if calls.count("transfer") == 1:
            raise WorkerDied()
        return amount

    @flow("atomic-crash")
    def crash(ctx, data):
        first = ctx.step("note", note, "before")
        moved = ctx.step("transfer", transfer, 40, atomic=True)
        return [first, moved]

    run = start("atomic-crash", {})
    with pytest.raises(WorkerDied):
        run_until_idle()
    # The step before committed on its own; of the atomic step nothing did.
    assert list(Step.objects.filter(run=run).values_list("name", "status")) == [
        ("note", StepStatus.COMPLETED)
    ]
    assert not User.objects.filter(username="ledger-40").exists()

    clock.travel(timedelta(seconds=settings.HITL_LEASE_SECONDS + 1))
    assert run_until_idle() == ["completed"]
    run.refresh_from_db()
    assert run.result == ["before", 40] and run.recovery_count == 1
    assert calls == ["before", "transfer", "transfer"]  # "note" did not run again
    assert User.objects.filter(username="ledger-40").count() == 1
    transfer_step = Step.objects.get(run=run, name="transfer")
    assert (transfer_step.status, transfer_step.attempts) == (StepStatus.COMPLETED, 1)
    seqs = list(RunEvent.objects.filter(run=run).values_list("seq", flat=True))
    assert seqs == list(range(1, len(seqs) + 1))  # no gap left by the rolled-back attempt


def test_an_atomic_step_of_a_cancelled_run_never_runs(flow):
    ran = []

    def cancel_me(run_id):
        cancel(run_id)
        return "cancelled"

    @flow("atomic-cancelled")
    def cancelled(ctx, data):
        ctx.step("cancel", cancel_me, ctx.run_id)
        ctx.step("write", lambda: ran.append(User.objects.create(username="never")), atomic=True)

    run = start("atomic-cancelled", {})
    assert run_until_idle() == ["lost"]
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED
    assert ran == [] and not User.objects.filter(username="never").exists()
