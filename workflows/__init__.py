"""Durable human-in-the-loop workflows for Django.

    from workflows import workflow, Context, start, notify, cancel

Names are resolved lazily (PEP 562) so that importing this package never touches models before
Django's app registry is ready.
"""

from typing import Any

_EXPORTS = {
    "workflow": ("workflows.registry", "workflow"),
    "registry": ("workflows.registry", "registry"),
    "Context": ("workflows.context", "Context"),
    "InputResponse": ("workflows.context", "InputResponse"),
    "start": ("workflows.api_python", "start"),
    "notify": ("workflows.api_python", "notify"),
    "cancel": ("workflows.api_python", "cancel"),
    "retry": ("workflows.api_python", "retry"),
    "answer_input": ("workflows.api_python", "answer_input"),
    "WorkflowError": ("workflows.errors", "WorkflowError"),
    "NonDeterminismError": ("workflows.errors", "NonDeterminismError"),
    "StepFailed": ("workflows.errors", "StepFailed"),
    "InvalidInput": ("workflows.errors", "InvalidInput"),
    "InvalidTransition": ("workflows.errors", "InvalidTransition"),
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    try:
        module, attr = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'workflows' has no attribute {name!r}") from None
    import importlib

    return getattr(importlib.import_module(module), attr)
