"""Replay, waits, timers, retries, cancellation and failure, through the real engine."""

from datetime import timedelta

import pytest

from tests.workflows import flows
from workflows import cancel, clock, notify, retry, start
from workflows.errors import InvalidTransition, NotSerializable
from workflows.models import (
    EventMessage,
    RunEvent,
    RunStatus,
    Step,
    StepStatus,
    WaitPoint,
    WaitStatus,
    WorkflowRun,
)
from workflows.testing import run_until_idle

pytestmark = pytest.mark.django_db


def refresh(run):
    run.refresh_from_db()
    return run


def test_each_step_runs_exactly_once_across_many_resumes():
    run = start("counter", {"tag": "a"})
    run_until_idle()
    assert refresh(run).status == RunStatus.WAITING
    notify("go-1-a", {"n": 1})
    run_until_idle()
    assert refresh(run).status == RunStatus.WAITING
    notify("go-2-a")
    run_until_idle()

    assert refresh(run).status == RunStatus.COMPLETED
    assert run.result == {"sum": 6, "first_event": {"n": 1}}
    # Three advances replayed the function from the top; each step function ran once.
    assert sorted(flows.executions.values()) == [1, 1, 1]
    assert run.advance_count == 3
    assert list(run.steps.values_list("name", "status")) == [
        ("first", "completed"),
        ("go-1", "completed"),
        ("second", "completed"),
        ("go-2", "completed"),
        ("third", "completed"),
    ]


def test_notify_before_the_wait_is_kept_and_delivered():
    run = start("counter", {"tag": "early"})
    result = notify("go-1-early", {"early": True})
    # Nobody waits yet (the run has not reached the wait): stored, nothing resumed.
    assert (result.resumed, result.stored) == (0, True)
    run_until_idle()
    assert refresh(run).status == RunStatus.WAITING  # now waiting on go-2 only
    assert run.waits.get(key="go-1").resolution == {"early": True}
    notify("go-2-early")
    run_until_idle()
    assert refresh(run).result["first_event"] == {"early": True}


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf"), "a\x00b", {"\x00": 1}])
def test_data_that_is_not_strict_json_is_refused_before_anything_is_written(bad):
    # Python's json writes NaN, Infinity and "\u0000"; PostgreSQL's jsonb refuses them
    # mid-write (found by the webhook fuzz as 500s). Refused up front, on every database.
    run = start("event-timeout", {"event_id": "strict"})
    run_until_idle()
    with pytest.raises(NotSerializable, match="event data"):
        notify("strict", {"amount": bad})
    with pytest.raises(NotSerializable, match="workflow input"):
        start("event-timeout", {"event_id": "strict-2", "extra": [bad]})
    assert refresh(run).status == RunStatus.WAITING
    assert run.waits.get().status == WaitStatus.OPEN
    assert not EventMessage.objects.exists() and WorkflowRun.objects.count() == 1


def test_notify_after_the_wait_resumes_the_run():
    run = start("event-timeout", {"event_id": "order-7"})
    run_until_idle()
    assert refresh(run).status == RunStatus.WAITING
    wait = run.waits.get()
    assert (wait.kind, wait.event_id, wait.status) == ("event", "order-7", WaitStatus.OPEN)
    assert wait.deadline is not None

    result = notify("order-7", {"approved": True})
    assert (result.resumed, result.stored) == (1, False)
    assert refresh(run).status == RunStatus.PENDING
    run_until_idle()
    assert refresh(run).result == {"payload": {"approved": True}, "timed_out": False}


def test_wait_for_event_times_out():
    run = start("event-timeout", {"event_id": "never"})
    run_until_idle()
    clock.travel(timedelta(seconds=299))
    run_until_idle()
    assert refresh(run).status == RunStatus.WAITING
    clock.travel(timedelta(seconds=2))
    run_until_idle()
    assert refresh(run).result == {"payload": None, "timed_out": True}
    assert run.waits.get().status == WaitStatus.TIMED_OUT
    # A late notify finds nobody waiting and is only stored.
    assert notify("never", {}).resumed == 0


def test_durable_sleep_holds_no_worker_and_wakes_at_its_deadline():
    run = start("sleeper", {"seconds": 3600})
    assert run_until_idle() == ["waiting"]
    assert refresh(run).status == RunStatus.WAITING
    assert run.lease_owner == ""  # no worker holds it while it sleeps
    clock.travel(timedelta(minutes=59))
    assert run_until_idle() == []
    clock.travel(timedelta(minutes=2))
    assert run_until_idle() == ["completed"]
    assert refresh(run).result["slept"] >= 3600


def test_retries_back_off_durably_and_end_in_failure():
    flows.failures_left["k1"] = 10
    run = start("flaky", {"key": "k1", "retries": 2})
    assert run_until_idle() == ["retry"]
    step = Step.objects.get(run=run, name="call-upstream")
    assert (step.status, step.attempts) == (StepStatus.RETRYING, 1)
    assert refresh(run).status == RunStatus.PENDING
    first_retry_at = run.wake_at

    # Not due yet: nothing runs before the backoff has passed.
    clock.travel(timedelta(seconds=9))
    assert run_until_idle() == []
    clock.travel(timedelta(seconds=2))
    assert run_until_idle() == ["retry"]
    # Exponential: the second wait is twice the first (10 s, then 20 s).
    step.refresh_from_db()
    assert step.attempts == 2
    assert (refresh(run).wake_at - first_retry_at).total_seconds() == pytest.approx(21, abs=1)

    clock.travel(timedelta(seconds=21))
    assert run_until_idle() == ["failed"]
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert run.error_type == "StepFailed"
    assert "call-upstream" in run.error and "upstream unavailable" in run.error
    assert "ConnectionError" in run.traceback
    step.refresh_from_db()
    assert (step.status, step.attempts) == (StepStatus.FAILED, 3)
    # The step before the failing one ran once, however many attempts followed.
    assert flows.executions[f"{run.id}:0"] == 1


def test_retry_succeeds_after_transient_failures():
    flows.failures_left["k2"] = 1
    run = start("flaky", {"key": "k2", "retries": 3})
    run_until_idle()
    clock.travel(timedelta(seconds=11))
    run_until_idle()
    assert refresh(run).status == RunStatus.COMPLETED
    assert run.result == {"result": "ok"}


def test_retry_of_a_failed_run_resumes_from_the_failed_step():
    flows.failures_left["k3"] = 1
    run = start("fails-then-fixed", {"key": "k3"})
    run_until_idle()
    assert refresh(run).status == RunStatus.FAILED
    assert flows.executions[f"{run.id}:0"] == 1

    retry(run.id)
    assert refresh(run).status == RunStatus.PENDING
    run_until_idle()
    assert refresh(run).status == RunStatus.COMPLETED
    assert run.error == ""
    # "prepare" was not run again; "charge" ran its fresh attempt, "receipt" once.
    assert flows.executions[f"{run.id}:0"] == 1
    assert flows.executions[f"{run.id}:2"] == 1
    assert Step.objects.get(run=run, name="charge").status == StepStatus.COMPLETED


def test_retry_refuses_a_run_that_did_not_fail():
    run = start("sleeper", {"seconds": 10})
    run_until_idle()
    with pytest.raises(InvalidTransition, match=r"Cannot retry run .* it is waiting"):
        retry(run.id)


def test_non_determinism_fails_the_run_naming_both_steps():
    run = start("mutable", {"tag": "x"})
    run_until_idle()
    flows.mutable["first"] = "send-email"  # a deploy renamed the first step
    notify("mutable-x")
    run_until_idle()
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert run.error_type == "NonDeterminismError"
    assert "'charge-card'" in run.error and "'send-email'" in run.error
    # The renamed step never executed.
    assert flows.executions[f"{run.id}:0"] == 1


def test_cancel_stops_a_waiting_run_and_closes_its_waits():
    run = start("counter", {"tag": "c"})
    run_until_idle()
    cancel(run.id, reason="customer withdrew")
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED
    assert run.waits.get().status == WaitStatus.CANCELLED
    # The event arriving afterwards resumes nothing, and no further step executes.
    assert notify("go-1-c").resumed == 0
    run_until_idle()
    assert sorted(flows.executions.values()) == [1]
    assert RunEvent.objects.filter(run=run, type="run.finished").get().data["status"] == (
        "cancelled"
    )


def test_cancel_of_a_finished_run_is_refused_and_changes_nothing():
    run = start("typed", {"order_id": 1, "amount": "9.50"})
    run_until_idle()
    events_before = RunEvent.objects.filter(run=run).count()
    with pytest.raises(InvalidTransition, match=r"Cannot cancel run .* it is completed"):
        cancel(run.id)
    assert refresh(run).status == RunStatus.COMPLETED
    assert RunEvent.objects.filter(run=run).count() == events_before


def test_cancel_while_a_step_runs_prevents_the_next_step():
    calls = []

    def cancel_midway(ctx):
        calls.append("first")
        cancel(ctx.run_id)  # a reviewer cancels while this step is executing
        return 1

    from workflows.registry import registry, workflow

    @workflow("cancel-midway")
    def flow(ctx, data):
        ctx.step("first", cancel_midway, ctx)
        ctx.step("second", calls.append, "second")
        return "done"

    try:
        run = start("cancel-midway", {})
        assert run_until_idle() == ["lost"]
        assert refresh(run).status == RunStatus.CANCELLED
        assert calls == ["first"]
    finally:
        registry.unregister("cancel-midway")


def test_ctx_now_uuid_and_emit_are_recorded_once():
    run = start("emitter", {"tag": "e"})
    run_until_idle()
    notify("emit-e")
    run_until_idle()
    run.refresh_from_db()
    token_step = Step.objects.get(run=run, name="uuid4")
    assert run.result == {"token": token_step.result}
    assert RunEvent.objects.filter(run=run, type="progress").count() == 1


def test_run_events_form_a_gapless_sequence():
    run = start("counter", {"tag": "seq"})
    run_until_idle()
    notify("go-1-seq")
    run_until_idle()
    notify("go-2-seq")
    run_until_idle()
    events = list(RunEvent.objects.filter(run=run).values_list("seq", "type"))
    assert [seq for seq, _ in events] == list(range(1, len(events) + 1))
    types = [t for _, t in events]
    assert types[0] == "run.started" and types[-1] == "run.finished"
    # Three steps and the two waits, each finished once; the run waited twice.
    assert types.count("step.finished") == 5 and types.count("run.waiting") == 2


def test_input_request_answered_with_typed_data():
    from workflows import answer_input
    from workflows.errors import InvalidInput, WaitNotFound

    run = start("ask", {"draft": 3})
    run_until_idle()
    wait = WaitPoint.objects.get(run=run)
    assert wait.request["prompt"] == "Approve the draft?"
    assert wait.request["metadata"] == {"draft": 3}

    with pytest.raises(InvalidInput) as bad:
        answer_input(wait.id, {"approved": "yes"})
    assert "approved" in bad.value.errors
    assert refresh(run).status == RunStatus.WAITING  # a bad answer changes nothing

    answer_input(wait.id, {"approved": True, "note": "ship it"})
    run_until_idle()
    assert refresh(run).result == {
        "answer": {"approved": True, "note": "ship it"},
        "timed_out": False,
    }
    with pytest.raises(WaitNotFound, match="already answered"):
        answer_input(wait.id, {"approved": False})


def test_emit_refuses_the_engines_event_types():
    from workflows.registry import registry, workflow

    @workflow("impersonator")
    def flow(ctx, data):
        ctx.emit("approval.updated", {"status": "approved"})

    try:
        run = start("impersonator", {})
        run_until_idle()
        run.refresh_from_db()
        assert run.status == RunStatus.FAILED
        assert "belong to the engine" in run.error
        assert not RunEvent.objects.filter(run=run, type="approval.updated").exists()
    finally:
        registry.unregister("impersonator")


def test_a_step_cannot_start_once_the_run_is_no_longer_this_workers():
    from workflows import journal
    from workflows.engine import claim

    run = start("sleeper", {"seconds": 5})
    assert claim(run.pk, "worker-a") is not None
    step = journal.step_begin(run.pk, "worker-a", 0, "first", "step", 1)
    assert step.pk and step.status == StepStatus.RUNNING
    with pytest.raises(journal.LeaseLost):  # another worker's name: not its run
        journal.step_begin(run.pk, "worker-b", 1, "second", "step", 1)
    cancel(run.pk)
    with pytest.raises(journal.LeaseLost):  # cancelled: not even its owner starts a step
        journal.step_begin(run.pk, "worker-a", 1, "second", "step", 1)
    assert list(Step.objects.filter(run=run).values_list("name", flat=True)) == ["first"]


def test_a_workflow_that_fails_after_a_step_keeps_the_step_completed():
    from workflows.registry import registry, workflow

    @workflow("fails-after-step")
    def flow(ctx, data):
        ctx.step("charge", lambda: 42)
        raise ValueError("out of stock")

    try:
        run = start("fails-after-step", {})
        assert run_until_idle() == ["failed"]
        run.refresh_from_db()
        assert run.status == RunStatus.FAILED and "out of stock" in run.error
        # The step's completion is written with the run's failure, in order, nothing lost.
        charge = Step.objects.get(run=run, name="charge")
        assert (charge.status, charge.result) == (StepStatus.COMPLETED, 42)
        events = list(RunEvent.objects.filter(run=run).values_list("seq", "type"))
        assert [t for _, t in events] == ["run.started", "step.finished", "run.finished"]
        assert [s for s, _ in events] == [1, 2, 3]
    finally:
        registry.unregister("fails-after-step")


def test_a_step_whose_completion_did_not_commit_runs_again_and_nothing_half_written(
    monkeypatch,
):
    """A step counts as done only once its completion commits. Here the database connection
    fails at the next journal write (which carries the completion): the step is re-run after
    the lease expires, exactly as after a crash just before the completion committed."""
    from django.conf import settings
    from django.db import OperationalError

    from workflows import journal
    from workflows.registry import registry, workflow

    calls = []

    @workflow("cut-between-steps")
    def flow(ctx, data):
        a = ctx.step("a", lambda: calls.append("a") or len(calls))
        b = ctx.step("b", lambda: calls.append("b") or len(calls))
        return [a, b]

    real_begin = journal.step_begin

    def cut_once(run_id, owner, sequence, *args, **kwargs):
        if sequence == 1 and not cut:
            cut.append(sequence)
            raise OperationalError("server closed the connection unexpectedly")
        return real_begin(run_id, owner, sequence, *args, **kwargs)

    cut: list[int] = []
    monkeypatch.setattr(journal, "step_begin", cut_once)
    try:
        run = start("cut-between-steps", {})
        assert run_until_idle() == ["db-error"]
        run.refresh_from_db()
        assert run.status == RunStatus.RUNNING
        assert list(Step.objects.filter(run=run).values_list("name", "status")) == [
            ("a", StepStatus.RUNNING)
        ]
        assert not RunEvent.objects.filter(run=run, type="step.finished").exists()

        # The "dead" worker's lease expires; the run is claimable by another worker.
        clock.travel(timedelta(seconds=settings.HITL_LEASE_SECONDS + 1))
        assert run_until_idle() == ["completed"]
        run.refresh_from_db()
        assert run.result == [2, 3] and calls == ["a", "a", "b"]
        assert run.recovery_count == 1
        types = list(RunEvent.objects.filter(run=run).values_list("type", flat=True))
        assert types.count("step.finished") == 2
    finally:
        registry.unregister("cut-between-steps")


def test_a_run_whose_workers_keep_dying_is_failed_past_the_recovery_limit(settings):
    from workflows.engine import claim

    settings.HITL_MAX_RECOVERIES = 1
    run = start("sleeper", {"seconds": 5})
    # Three workers in turn take the run and die holding it (their leases expire).
    assert claim(run.pk, "worker-1") is not None
    clock.travel(timedelta(seconds=settings.HITL_LEASE_SECONDS + 1))
    second = claim(run.pk, "worker-2")
    assert second is not None and refresh(run).recovery_count == 1
    clock.travel(timedelta(seconds=settings.HITL_LEASE_SECONDS + 1))
    assert claim(run.pk, "worker-3") is None

    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert "died 2 times" in run.error and "HITL_MAX_RECOVERIES=1" in run.error
    types = list(RunEvent.objects.filter(run=run).values_list("type", flat=True))
    assert types == ["run.started", "run.recovered", "run.finished"]
    assert run_until_idle() == []  # nothing left to advance
