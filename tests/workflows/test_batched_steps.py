"""Held-back completions, written with the run's next journal write: batched steps
(``ctx.step(..., batched=True)``) and the wait a woken run reads."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.conftest import is_postgres
from workflows import cancel, clock, notify, start
from workflows.context import BATCH_LIMIT
from workflows.engine import advance
from workflows.models import RunEvent, RunStatus, Step, StepStatus
from workflows.registry import registry, workflow
from workflows.testing import run_until_idle

pytestmark = pytest.mark.django_db

calls: list[str] = []


class WorkerDied(BaseException):
    """Stands in for the worker process dying mid-step: nothing after it runs or is written."""


@pytest.fixture
def flows():
    calls.clear()
    names = []

    def register(name, fn):
        workflow(name)(fn)
        names.append(name)

    yield register
    for name in names:
        registry.unregister(name)


def recorded(run) -> list[tuple[str, str]]:
    return list(Step.objects.filter(run=run).values_list("name", "status"))


def expire_lease() -> None:
    clock.travel(timedelta(seconds=settings.HITL_LEASE_SECONDS + 1))


def effect(name: str, run_id=None):
    def run():
        calls.append(name)
        if run_id is not None:
            # What a step sees of the journal while it runs: nothing of the batch before it.
            return sorted(Step.objects.filter(run_id=run_id).values_list("name", flat=True))
        return name

    return run


def dies_once(name: str):
    def run():
        calls.append(name)
        if calls.count(name) == 1:  # the worker dies during the step's first execution
            raise WorkerDied()
        return name

    return run


def test_batched_steps_are_written_together_at_the_runs_next_write(flows):
    def flow(ctx, data):
        a = ctx.step("a", effect("a"), batched=True)
        b = ctx.step("b", effect("b"), batched=True)
        seen = ctx.step("c", effect("c", ctx.run_id), batched=True)
        return {"a": a, "b": b, "seen_by_c": seen}

    flows("three-batched", flow)
    run = start("three-batched", {})
    assert run_until_idle() == ["completed"]
    run.refresh_from_db()
    # While c ran, neither a nor b had a record: all three were written with the run's end.
    assert run.result == {"a": "a", "b": "b", "seen_by_c": []}
    steps = list(Step.objects.filter(run=run).order_by("sequence"))
    assert [(s.name, s.status, s.attempts) for s in steps] == [
        ("a", StepStatus.COMPLETED, 1),
        ("b", StepStatus.COMPLETED, 1),
        ("c", StepStatus.COMPLETED, 1),
    ]
    assert all(s.started_at <= s.finished_at for s in steps)
    assert [s.result for s in steps] == ["a", "b", []]
    events = list(RunEvent.objects.filter(run=run).values_list("seq", "type", "data"))
    assert [(seq, type_) for seq, type_, _ in events] == [
        (1, "run.started"),
        (2, "step.finished"),
        (3, "step.finished"),
        (4, "step.finished"),
        (5, "run.finished"),
    ]
    assert [data.get("step") for _, _, data in events[1:4]] == ["a", "b", "c"]


def test_a_batch_costs_one_statement_where_unbatched_steps_cost_one_each(flows):
    def make(batched):
        def flow(ctx, data):
            return [ctx.step(f"s{n}", effect(f"s{n}"), batched=batched) for n in range(3)]

        return flow

    flows("plain-3", make(False))
    flows("batched-3", make(True))
    counts = {}
    for name in ("plain-3", "batched-3"):
        run = start(name, {})
        with CaptureQueriesContext(connection) as queries:
            assert advance(run.pk) == "completed"
        counts[name] = len(queries)
        assert recorded(run) == [(f"s{n}", StepStatus.COMPLETED) for n in range(3)]
    if is_postgres():
        # claim, first start, two boundaries, end -- against claim and end (workflows.fastpath).
        assert counts == {"plain-3": 5, "batched-3": 2}
    else:
        # The ORM path (SQLite) writes a statement per row, but no batched step's start.
        assert counts["batched-3"] < counts["plain-3"]


def test_batched_steps_not_yet_written_run_again_after_a_crash(flows):
    def flow(ctx, data):
        return [
            ctx.step("a", effect("a"), batched=True),
            ctx.step("b", dies_once("b"), batched=True),
        ]

    flows("crash-in-batch", flow)
    run = start("crash-in-batch", {})
    with pytest.raises(WorkerDied):
        advance(run.pk)
    assert recorded(run) == []  # nothing of the batch was written
    expire_lease()
    assert run_until_idle() == ["completed"]
    assert calls == ["a", "b", "a", "b"]
    assert recorded(run) == [("a", StepStatus.COMPLETED), ("b", StepStatus.COMPLETED)]
    assert RunEvent.objects.filter(run=run, type="step.finished").count() == 2


def test_a_written_batched_step_never_runs_again(flows):
    """The next unbatched step writes the batch before it starts: a crash inside it re-runs
    only itself."""

    def flow(ctx, data):
        ctx.step("a", effect("a"), batched=True)
        ctx.step("b", effect("b"), batched=True)
        return ctx.step("c", dies_once("c"))

    flows("crash-after-batch", flow)
    run = start("crash-after-batch", {})
    with pytest.raises(WorkerDied):
        advance(run.pk)
    assert recorded(run) == [
        ("a", StepStatus.COMPLETED),
        ("b", StepStatus.COMPLETED),
        ("c", StepStatus.RUNNING),
    ]
    expire_lease()
    assert run_until_idle() == ["completed"]
    assert calls == ["a", "b", "c", "c"]
    assert Step.objects.get(run=run, name="c").attempts == 2


def test_a_crash_in_a_batched_step_does_not_rerun_the_unbatched_step_before_it(flows):
    """An unbatched step's completion is written before a batched step after it runs."""

    def flow(ctx, data):
        ctx.step("expensive", effect("expensive"))
        return ctx.step("quick", dies_once("quick"), batched=True)

    flows("plain-then-batched", flow)
    run = start("plain-then-batched", {})
    with pytest.raises(WorkerDied):
        advance(run.pk)
    assert recorded(run) == [("expensive", StepStatus.COMPLETED)]
    expire_lease()
    assert run_until_idle() == ["completed"]
    assert calls == ["expensive", "quick", "quick"]


def test_a_wait_writes_the_batch_before_the_run_sleeps(flows):
    def flow(ctx, data):
        ctx.step("a", effect("a"), batched=True)
        ctx.sleep("pause", 60)
        return ctx.step("b", effect("b"), batched=True)

    flows("batch-then-sleep", flow)
    run = start("batch-then-sleep", {})
    assert run_until_idle() == ["waiting"]
    assert recorded(run) == [("a", StepStatus.COMPLETED), ("pause", StepStatus.WAITING)]
    clock.travel(timedelta(seconds=61))
    assert run_until_idle() == ["completed"]
    assert calls == ["a", "b"]


def test_a_failing_batched_step_is_recorded_and_retried_like_any_step(flows):
    failures = ["once"]

    def flaky():
        calls.append("flaky")
        if failures:
            failures.pop()
            raise ConnectionError("upstream timed out")
        return "ok"

    def flow(ctx, data):
        ctx.step("a", effect("a"), batched=True)
        return ctx.step("flaky", flaky, batched=True, retries=1, backoff=1)

    flows("batched-retry", flow)
    run = start("batched-retry", {})
    assert run_until_idle() == ["retry"]
    # The batch before it is written, and the failed attempt is visible with its error.
    assert recorded(run) == [("a", StepStatus.COMPLETED), ("flaky", StepStatus.RETRYING)]
    assert "upstream timed out" in Step.objects.get(run=run, name="flaky").error
    clock.travel(timedelta(seconds=2))
    assert run_until_idle() == ["completed"]
    flaky_step = Step.objects.get(run=run, name="flaky")
    assert (flaky_step.status, flaky_step.attempts, flaky_step.result) == ("completed", 2, "ok")
    assert calls == ["a", "flaky", "flaky"]


def test_a_cancel_during_a_batch_writes_nothing_more(flows):
    """A cancel takes effect at the batch's write: the run stays cancelled, and no step of the
    batch (nor a result) is recorded."""

    def flow(ctx, data):
        ctx.step("a", effect("a"), batched=True)
        ctx.step("cancel", lambda: cancel(ctx.run_id, reason="stop"), batched=True)
        return ctx.step("b", effect("b"), batched=True)

    flows("cancel-in-batch", flow)
    run = start("cancel-in-batch", {})
    assert run_until_idle() == ["lost"]
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED and run.result is None
    assert recorded(run) == []
    types = list(RunEvent.objects.filter(run=run).values_list("type", flat=True))
    assert types == ["run.started", "run.finished"]


def test_long_batches_are_written_in_chunks(flows):
    count = BATCH_LIMIT + 20

    def flow(ctx, data):
        return sum(ctx.step(f"s{n}", lambda n=n: n, batched=True) for n in range(count))

    flows("long-batch", flow)
    run = start("long-batch", {})
    with CaptureQueriesContext(connection) as queries:
        assert advance(run.pk) == "completed"
    run.refresh_from_db()
    assert run.result == sum(range(count))
    assert Step.objects.filter(run=run, status=StepStatus.COMPLETED).count() == count
    seqs = list(RunEvent.objects.filter(run=run).values_list("seq", flat=True))
    assert seqs == list(range(1, count + 3))
    if is_postgres():
        # The claim, the first BATCH_LIMIT steps, the rest with the run's end.
        assert len(queries) == 3


def test_atomic_and_batched_together_are_refused(flows):
    def flow(ctx, data):
        return ctx.step("both", effect("both"), atomic=True, batched=True)

    flows("atomic-batched", flow)
    run = start("atomic-batched", {})
    assert run_until_idle() == ["failed"]
    run.refresh_from_db()
    assert "exclude each other" in run.error
    assert calls == []


# --- a woken run's wait -----------------------------------------------------------------


def test_a_woken_run_finishes_with_what_its_wait_received(flows):
    def flow(ctx, data):
        before = ctx.step("before", effect("before"))
        payload, timed_out = ctx.wait_for_event("go", f"go-{data['tag']}")
        return {"before": before, "payload": payload, "timed_out": timed_out}

    flows("wake-and-finish", flow)
    run = start("wake-and-finish", {"tag": "a"})
    assert run_until_idle() == ["waiting"]
    notify("go-a", {"amount": 7})
    assert run_until_idle() == ["completed"]

    run.refresh_from_db()
    assert run.result == {"before": "before", "payload": {"amount": 7}, "timed_out": False}
    assert recorded(run) == [("before", StepStatus.COMPLETED), ("go", StepStatus.COMPLETED)]
    wait_step = run.steps.get(name="go")
    assert wait_step.result["data"] == {"amount": 7} and wait_step.finished_at is not None
    # The wait's step has its step.finished event, numbered before the run's end.
    types = list(RunEvent.objects.filter(run=run).order_by("seq").values_list("type", flat=True))
    assert types[-2:] == ["step.finished", "run.finished"]
    assert calls == ["before"]


@pytest.mark.skipif(not is_postgres(), reason="counts the PostgreSQL fast path's statements")
def test_resuming_after_a_decision_is_four_statements(flows):
    def flow(ctx, data):
        payload, _ = ctx.wait_for_event("go", "go-count")
        return payload

    flows("wake-count", flow)
    run = start("wake-count", {})
    run_until_idle()
    notify("go-count", {"ok": True})
    with CaptureQueriesContext(connection) as queries:
        assert advance(run.pk) == "completed"
    # The claim, the journal, the closed wait, and the run's end with the wait's completion:
    # two reads and two writes, each its own commit. Before the wait was read this way: 16
    # statements, the last 12 in three transactions.
    assert len(queries.captured_queries) == 4, [q["sql"][:80] for q in queries]


def test_a_worker_dying_after_reading_its_wait_reads_it_again(flows):
    """Between reading the closed wait and the next journal write nothing is written: a crash
    there leaves the wait step waiting, and the next worker reads the same outcome."""

    def flow(ctx, data):
        payload, _ = ctx.wait_for_event("go", "go-die")
        after = ctx.step("after", dies_once("after"), batched=True)
        return {"payload": payload, "after": after}

    flows("wake-and-die", flow)
    run = start("wake-and-die", {})
    run_until_idle()
    notify("go-die", {"n": 1})
    with pytest.raises(WorkerDied):
        advance(run.pk)
    assert recorded(run) == [("go", StepStatus.WAITING)]

    expire_lease()
    assert run_until_idle() == ["completed"]
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED
    assert run.result == {"payload": {"n": 1}, "after": "after"}
    assert recorded(run) == [("go", StepStatus.COMPLETED), ("after", StepStatus.COMPLETED)]
    assert calls == ["after", "after"]
