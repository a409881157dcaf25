"""Starting runs: idempotency keys, input validation, unknown workflows."""

import pytest

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
