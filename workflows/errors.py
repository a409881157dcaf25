"""The engine's error hierarchy (after Temporal's): catch ``WorkflowError`` for all of them."""

from typing import Any


class WorkflowError(Exception):
    """Base class of every error the engine raises on purpose."""


class WorkflowNotFound(WorkflowError):
    """No workflow is registered under that name (or that version)."""


class InvalidInput(WorkflowError):
    """Input for a workflow, event or input request failed validation; ``errors`` says where."""

    def __init__(self, message: str, errors: Any = None):
        super().__init__(message)
        self.errors = errors if errors is not None else {"detail": [message]}


class InvalidTransition(WorkflowError):
    """A status change the transition table does not allow, e.g. cancelling a finished run."""

    def __init__(self, run_id: Any, current: str, target: str, action: str | None = None):
        self.run_id, self.current, self.target = run_id, current, target
        what = action or f"move to {target}"
        super().__init__(f"Cannot {what} run {run_id}: it is {current}.")


class RunNotFound(WorkflowError):
    """No run with that id."""


class WaitNotFound(WorkflowError):
    """No open wait (input request, event wait) with that id."""


class WaitClosed(WaitNotFound):
    """The wait exists but was already answered, timed out or cancelled."""


class NonDeterminismError(WorkflowError):
    """Replaying the workflow reached a different durable call than the run recorded."""


class WorkflowVersionMissing(WorkflowError):
    """The run's workflow version is no longer registered; the engine never replays other code."""


class StepFailed(WorkflowError):
    """A step failed after its last attempt. Raised into the workflow, which may catch it."""

    def __init__(self, step_name: str, error_type: str, message: str):
        self.step_name, self.error_type, self.message = step_name, error_type, message
        super().__init__(f"Step '{step_name}' failed: {error_type}: {message}")


class NotSerializable(WorkflowError):
    """A step result or workflow result cannot be stored as JSON."""
