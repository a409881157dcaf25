"""Starting runs: idempotency keys, input validation, unknown workflows."""

import threading

import pytest
from django.db import connection, transaction
from django.utils import timezone

from tests.conftest import run_in_threads
from workflows import start
from workflows.errors import InvalidInput, WorkflowNotFound
from workflows.models import RunEvent, RunStatus, WorkflowRun
from workflows.services import run_start
from workflows.testing import run_until_idle

pytestmark = pytest.mark.django_db


def test_same_idempotency_key_returns_the_same_run():
    first, created = run_start(
        workflow_name="sleeper", input={"seconds": 5}, idempotency_key="order-1"
    )
    again, created_again = run_start(
        workflow_name="sleeper", input={"seconds": 5}, idempotency_key="order-1"
    )
    assert (created, created_again) == (True, False)
    assert again.pk == first.pk
    assert WorkflowRun.objects.count() == 1
    # The key is per workflow: another workflow may use the same one.
    other, created_other = run_start(
        workflow_name="counter", input={"tag": "z"}, idempotency_key="order-1"
    )
    assert created_other and other.pk != first.pk


def test_input_is_validated_by_the_workflows_serializer_and_stored_as_json():
    run = start("typed", {"order_id": "12", "amount": "19.9"})
    assert run.input == {"order_id": 12, "amount": "19.90"}
    run_until_idle()
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED
    assert run.result == {"order_id": 12, "amount": "19.90"}


def test_bad_input_names_the_fields_and_creates_nothing():
    with pytest.raises(InvalidInput) as error:
        start("typed", {"order_id": 0})
    assert set(error.value.errors) == {"order_id", "amount"}
    assert "typed" in str(error.value)
    assert WorkflowRun.objects.count() == 0
    assert RunEvent.objects.count() == 0


def test_unknown_workflow_is_refused_naming_the_known_ones():
    with pytest.raises(WorkflowNotFound, match=r"Unknown workflow 'nope'.*counter"):
        start("nope", {})
    assert WorkflowRun.objects.count() == 0


def test_input_that_is_not_an_object_is_refused():
    with pytest.raises(InvalidInput, match="JSON object"):
        start("counter", ["not", "an", "object"])
    assert WorkflowRun.objects.count() == 0


def test_blank_idempotency_key_is_refused():
    with pytest.raises(InvalidInput, match="idempotency key"):
        run_start(workflow_name="sleeper", input={"seconds": 1}, idempotency_key="  ")
    assert WorkflowRun.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_starts_racing_on_one_idempotency_key_make_one_run(monkeypatch):
    """The check for an existing run passes for every racer; the unique key decides, and the
    losers get the winner's run with nothing of theirs written."""
    from workflows import services

    real_filter = WorkflowRun.objects.filter
    barrier = threading.Barrier(4)

    class Late:
        # Each racer finds no run (as if it checked before anyone inserted), then all insert.
        def first(self):
            barrier.wait(timeout=10)
            return None

    calls = {"n": 0}

    def filter_(*args, **kwargs):
        if "idempotency_key" in kwargs and calls["n"] < 4:
            calls["n"] += 1
            return Late()
        return real_filter(*args, **kwargs)

    monkeypatch.setattr(services.WorkflowRun.objects, "filter", filter_)
    results = []

    def racer():
        try:
            results.append(
                run_start(workflow_name="sleeper", input={"seconds": 5}, idempotency_key="k")
            )
        finally:
            connection.close()

    run_in_threads(*[racer] * 4)
    assert sorted(created for _run, created in results) == [False, False, False, True]
    assert len({run.pk for run, _created in results}) == 1
    assert WorkflowRun.objects.count() == 1
    assert RunEvent.objects.filter(type="run.started").count() == 1


def test_a_lost_race_inside_the_callers_transaction_leaves_it_usable(monkeypatch):
    from workflows import services

    first, _ = run_start(workflow_name="sleeper", input={"seconds": 5}, idempotency_key="k")
    real_filter = WorkflowRun.objects.filter
    skipped = {"done": False}

    class Missed:
        def first(self):
            return None

    def filter_(*args, **kwargs):
        if "idempotency_key" in kwargs and not skipped["done"]:
            skipped["done"] = True  # the early check misses the run; the INSERT then collides
            return Missed()
        return real_filter(*args, **kwargs)

    monkeypatch.setattr(services.WorkflowRun.objects, "filter", filter_)
    with transaction.atomic():
        again, created = run_start(
            workflow_name="sleeper", input={"seconds": 5}, idempotency_key="k"
        )
        # The caller's transaction goes on working after the collision.
        other, other_created = run_start(workflow_name="counter", input={"tag": "after"})
    assert (created, again.pk) == (False, first.pk)
    assert other_created and WorkflowRun.objects.filter(pk=other.pk).exists()
    assert WorkflowRun.objects.count() == 2
    assert RunEvent.objects.filter(type="run.started").count() == 2


def test_keys_with_a_nul_character_are_refused_by_name_and_write_nothing():
    # PostgreSQL cannot store NUL in text: without the check the Python API raised the
    # driver's DataError (the API's serializers refuse NUL before the services are reached).
    from workflows import answer_input, notify
    from workflows.errors import WaitNotFound
    from workflows.models import EventMessage

    with pytest.raises(InvalidInput, match="idempotency key contains a NUL character"):
        start("sleeper", {"seconds": 5}, idempotency_key="order\x00-1")
    with pytest.raises(InvalidInput, match="event_id contains a NUL character"):
        notify("paid\x00", {"ok": True})
    with pytest.raises(WaitNotFound, match="No input request"):
        answer_input("req\x00", {"ok": True})
    assert WorkflowRun.objects.count() == 0
    assert EventMessage.objects.count() == 0


def test_each_start_stores_its_own_input_key_and_creator(django_user_model):
    """On PostgreSQL the run's INSERT is compiled once and reused: the rows must still hold
    what each start was given, with its own timestamps and its run.started event."""
    ann = django_user_model.objects.create_user("ann")
    began = timezone.now()
    started = [
        run_start(
            workflow_name="sleeper",
            input={"seconds": n},
            idempotency_key=f"key-{n}" if n % 2 else None,
            created_by=ann if n == 2 else None,
        )[0]
        for n in range(1, 5)
    ]
    rows = {run.pk: run for run in WorkflowRun.objects.filter(pk__in=[r.pk for r in started])}
    assert [
        (rows[r.pk].input, rows[r.pk].idempotency_key, rows[r.pk].created_by_id) for r in started
    ] == [
        ({"seconds": 1}, "key-1", None),
        ({"seconds": 2}, None, ann.pk),
        ({"seconds": 3}, "key-3", None),
        ({"seconds": 4}, None, None),
    ]
    for run in started:
        row = rows[run.pk]
        assert (row.status, row.event_seq, row.workflow_name) == (RunStatus.PENDING, 1, "sleeper")
        assert began <= row.created_at <= timezone.now() and row.created_at == run.created_at
        assert list(row.events.values_list("seq", "type")) == [(1, "run.started")]
