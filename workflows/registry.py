"""The ``@workflow`` decorator and the registry of workflow definitions by name and version."""

import importlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.serializers.json import DjangoJSONEncoder

from .errors import InvalidInput, WorkflowNotFound, WorkflowVersionMissing

WorkflowFn = Callable[..., Any]


@dataclass(frozen=True)
class WorkflowDefinition:
    name: str
    version: int
    fn: WorkflowFn
    input_serializer: type | None = None
    description: str = ""
    module: str = field(default="", compare=False)

    def validate_input(self, data: Any) -> dict:
        """Return the input as stored for the run, or raise ``InvalidInput`` with field errors."""
        if data is None:
            data = {}
        if self.input_serializer is None:
            if not isinstance(data, dict):
                raise InvalidInput("Workflow input must be a JSON object.")
            return to_json(data, what="workflow input")
        serializer = self.input_serializer(data=data)
        if not serializer.is_valid():
            raise InvalidInput(
                f"Input for workflow '{self.name}' is not valid.", errors=serializer.errors
            )
        # serializer.data is the JSON representation of validated_data (Decimals as strings,
        # dates as ISO strings), which is exactly what a replay will see.
        return to_json(dict(serializer.data), what="workflow input")


def to_json(value: Any, *, what: str) -> Any:
    """Round-trip through JSON so the first execution sees what every replay will see.

    Strict JSON: NaN and the infinities (which Python's json writes and reads) and strings
    with a NUL character are refused here, with a message, rather than by PostgreSQL's jsonb
    in the middle of a write (and on SQLite too, so both behave alike)."""
    from .errors import NotSerializable

    try:
        text = json.dumps(value, cls=DjangoJSONEncoder, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise NotSerializable(f"The {what} cannot be stored as JSON: {exc}") from exc
    stored = json.loads(text)
    # The escape is cheap to look for; only then walk the value (a literal "\\u0000" also
    # contains it).
    if "\\u0000" in text and contains_nul(stored):
        raise NotSerializable(
            f"The {what} cannot be stored as JSON: it contains a NUL character (\\u0000), "
            "which PostgreSQL's jsonb cannot hold."
        )
    return stored


def contains_nul(value: Any) -> bool:
    """Whether a JSON value holds a NUL character in any string or key (PostgreSQL stores
    neither text nor jsonb with one).

    A loop over a stack, not recursion: a webhook body is read at any depth the JSON parser
    allows, and recursing one level per nesting level overflowed a few hundred levels down."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False


class Registry:
    def __init__(self) -> None:
        self._defs: dict[str, dict[int, WorkflowDefinition]] = {}

    def register(self, definition: WorkflowDefinition) -> None:
        versions = self._defs.setdefault(definition.name, {})
        existing = versions.get(definition.version)
        if existing is not None and _qualname(existing.fn) != _qualname(definition.fn):
            raise ImproperlyConfigured(
                f"Workflow '{definition.name}' version {definition.version} is registered twice: "
                f"{_qualname(existing.fn)} and {_qualname(definition.fn)}. Bump the version."
            )
        versions[definition.version] = definition

    def unregister(self, name: str, version: int | None = None) -> None:
        if version is None:
            self._defs.pop(name, None)
        else:
            self._defs.get(name, {}).pop(version, None)

    def get(self, name: str, version: int | None = None) -> WorkflowDefinition:
        """The given version, or the newest when ``version`` is None."""
        versions = self._defs.get(name)
        if not versions:
            known = ", ".join(sorted(self._defs)) or "none"
            raise WorkflowNotFound(f"Unknown workflow '{name}'. Registered workflows: {known}.")
        if version is None:
            return versions[max(versions)]
        try:
            return versions[version]
        except KeyError:
            raise WorkflowVersionMissing(
                f"Workflow '{name}' version {version} is not registered any more "
                f"(registered: {sorted(versions)}); the run will not replay other code."
            ) from None

    def all(self) -> list[WorkflowDefinition]:
        """The newest version of every workflow, by name."""
        return [v[max(v)] for _, v in sorted(self._defs.items())]

    def versions(self, name: str) -> list[int]:
        return sorted(self._defs.get(name, {}))


registry = Registry()


def _qualname(fn: WorkflowFn) -> str:
    return f"{fn.__module__}.{fn.__qualname__}"


def workflow(
    name: str | None = None,
    *,
    version: int = 1,
    input: type | None = None,
    description: str | None = None,
) -> Callable[[WorkflowFn], WorkflowFn]:
    """Register ``fn(ctx, data)`` as a durable workflow.

    ``input`` is a DRF ``Serializer`` class; a start with input it rejects fails with
    ``InvalidInput`` (400 over the API) and creates nothing. Bump ``version`` when a change
    would make runs already in flight replay differently; keep the old version registered until
    its runs have finished.
    """

    def decorator(fn: WorkflowFn) -> WorkflowFn:
        definition = WorkflowDefinition(
            name=name or fn.__name__,
            version=version,
            fn=fn,
            input_serializer=input,
            description=(description or fn.__doc__ or "").strip(),
            module=fn.__module__,
        )
        registry.register(definition)
        fn.workflow_definition = definition  # type: ignore[attr-defined]
        return fn

    return decorator


def load_workflow_modules(extra_modules: list[str]) -> None:
    """Import every installed app's ``workflows.py`` and the modules named in settings."""
    from django.utils.module_loading import autodiscover_modules

    autodiscover_modules("workflows")
    for module in extra_modules:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ImproperlyConfigured(
                f"HITL_WORKFLOW_MODULES names '{module}', which cannot be imported: {exc}"
            ) from exc
