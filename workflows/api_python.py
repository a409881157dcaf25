"""The Python API for starting and signalling runs: thin wrappers over the services."""

from typing import Any

from . import services
from .models import WorkflowRun


def start(
    workflow_name: str,
    input: Any = None,
    idempotency_key: str | None = None,
    created_by: Any = None,
) -> WorkflowRun:
    """Start a run (or return the run already started with ``idempotency_key``)."""
    run, _created = services.run_start(
        workflow_name=workflow_name,
        input=input,
        idempotency_key=idempotency_key,
        created_by=created_by,
    )
    return run


def notify(event_id: str, data: Any = None) -> services.NotifyResult:
    """Resolve the waits on ``event_id``; stored for a later wait if none is open yet."""
    return services.event_notify(event_id=event_id, data=data)


def cancel(run_id: Any, reason: str = "", cancelled_by: Any = None) -> WorkflowRun:
    return services.run_cancel(run_id=run_id, reason=reason, cancelled_by=cancelled_by)


def retry(run_id: Any, retried_by: Any = None) -> WorkflowRun:
    return services.run_retry(run_id=run_id, retried_by=retried_by)


def answer_input(request_id: Any, data: Any, answered_by: Any = None):
    return services.input_answer(request_id=request_id, data=data, answered_by=answered_by)
