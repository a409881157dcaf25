"""Multi-stage approvals for durable workflows.

    from approvals import Stage, request_approval, gate, Decision

Names are resolved lazily (PEP 562) so that importing this package never touches models before
Django's app registry is ready.
"""

from typing import Any

_EXPORTS = {
    "Stage": ("approvals.authoring", "Stage"),
    "Decision": ("approvals.authoring", "Decision"),
    "StageResult": ("approvals.authoring", "StageResult"),
    "request_approval": ("approvals.authoring", "request_approval"),
    "gate": ("approvals.authoring", "gate"),
    "approval_decide": ("approvals.services", "approval_decide"),
    "approval_queue_for": ("approvals.selectors", "approval_queue_for"),
    "approval_progress": ("approvals.selectors", "approval_progress"),
    "ApprovalError": ("approvals.errors", "ApprovalError"),
    "ApprovalConflict": ("approvals.errors", "ApprovalConflict"),
    "ApprovalNotAllowed": ("approvals.errors", "ApprovalNotAllowed"),
    "InvalidDecision": ("approvals.errors", "InvalidDecision"),
    "GateRejected": ("approvals.errors", "GateRejected"),
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    try:
        module, attr = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'approvals' has no attribute {name!r}") from None
    import importlib

    return getattr(importlib.import_module(module), attr)
