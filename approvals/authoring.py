"""The author API: ``Stage``, ``request_approval`` (returns a ``Decision``) and ``gate``.

    from approvals import Stage, request_approval, gate

    decision = request_approval(
        ctx, "approve-refund", title="Refund 120", payload={"amount": 120},
        stages=[Stage("manager", groups=["managers"]),
                Stage("finance", groups=["finance"], required=2)],
        requester=data["requested_by"], editable=True,
        timeout=timedelta(hours=24), on_timeout="reject",
    )
    if decision.approved:
        ctx.step("refund", refund, decision.value)

A request is a durable wait of the run (``WaitKind.APPROVAL``): the run holds no worker while
people decide, and when the last stage is decided (or a deadline decides) the run replays and
``request_approval`` returns the recorded ``Decision``. Which stages exist is plain Python in the
workflow (e.g. finance only above an amount), computed deterministically from the run's data.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from workflows.context import Context, as_seconds, check_json_schema
from workflows.models import WaitKind
from workflows.registry import to_json

from .errors import GateRejected
from .models import ApprovalStatus, OnTimeout

ON_TIMEOUT = tuple(OnTimeout.values)


def _ref(value: Any) -> Any:
    """A user or group as stored in the stage spec: its pk / name, never a model instance."""
    from django.contrib.auth.models import Group

    if isinstance(value, Group):
        return value.name
    if hasattr(value, "_meta") and hasattr(value, "get_username"):
        return value.pk
    return value


@dataclass(frozen=True)
class Stage:
    """One stage of an approval: who decides and how many of them must approve.

    ``users`` (usernames, ids or users) and ``groups`` (names or groups) are the assignees;
    ``required`` approvals of distinct assignees pass the stage (N-of-M quorum), one rejection
    rejects the request. ``timeout`` (seconds or timedelta, from when the stage opens) with
    ``on_timeout`` ``"reject"``, ``"approve"`` or ``"escalate"`` (to the group ``escalate_to``,
    with a fresh deadline of the same length; a second expiry times the request out).
    ``remind_every`` sends reminders to assignees who have not approved, before the deadline.
    Unset ``timeout`` / ``on_timeout`` take ``request_approval``'s.
    """

    name: str
    users: Sequence[Any] = ()
    groups: Sequence[Any] = ()
    required: int = 1
    timeout: float | timedelta | None = None
    on_timeout: str | None = None
    escalate_to: Any = None
    remind_every: float | timedelta | None = None

    def __post_init__(self) -> None:
        if not self.name or not str(self.name).strip():
            raise ValueError("A stage needs a name.")
        if isinstance(self.users, str | bytes) or isinstance(self.groups, str | bytes):
            raise ValueError(f"Stage '{self.name}': users and groups are lists, not one string.")
        if not isinstance(self.required, int) or self.required < 1:
            raise ValueError(f"Stage '{self.name}': required must be a positive integer.")
        if self.on_timeout is not None and self.on_timeout not in ON_TIMEOUT:
            raise ValueError(f"Stage '{self.name}': on_timeout must be one of {ON_TIMEOUT}.")
        if self.on_timeout == OnTimeout.ESCALATE and not self.escalate_to:
            raise ValueError(f"Stage '{self.name}': on_timeout='escalate' needs escalate_to.")
        for what in ("timeout", "remind_every"):
            seconds = as_seconds(getattr(self, what))
            if seconds is not None and seconds <= 0:
                raise ValueError(f"Stage '{self.name}': {what} must be positive.")
        object.__setattr__(self, "users", tuple(self.users))
        object.__setattr__(self, "groups", tuple(self.groups))

    def spec(self, *, timeout: Any = None, on_timeout: str = OnTimeout.REJECT) -> dict:
        """The stage as JSON, with the request's defaults filled in."""
        effective = self.on_timeout or on_timeout
        if effective == OnTimeout.ESCALATE and not self.escalate_to:
            raise ValueError(f"Stage '{self.name}': on_timeout='escalate' needs escalate_to.")
        return {
            "name": str(self.name),
            "users": [_ref(u) for u in self.users],
            "groups": [_ref(g) for g in self.groups],
            "required": self.required,
            "timeout_seconds": as_seconds(self.timeout if self.timeout is not None else timeout),
            "on_timeout": effective,
            "escalate_to": _ref(self.escalate_to) if self.escalate_to else None,
            "remind_every_seconds": as_seconds(self.remind_every),
        }


@dataclass(frozen=True)
class StageResult:
    name: str
    status: str
    approved_by: tuple[str, ...] = ()
    decided_by: str | None = None
    reason: str = ""
    timed_out: bool = False
    escalated: bool = False


@dataclass(frozen=True)
class Decision:
    """How an approval request ended, as ``request_approval`` returns it.

    ``status``: ``approved``, ``rejected``, ``timed_out`` or ``cancelled``. ``value`` is the
    approved value (the edited one if a reviewer edited it), ``original_value`` what the
    workflow proposed. ``decided_by`` is the username of who made the final decision (None when
    a deadline or the system did); ``timed_out`` is True when a deadline decided.
    """

    status: str
    approved: bool
    value: Any
    original_value: Any
    reason: str = ""
    decided_by: str | None = None
    decided_by_id: Any = None
    edited: bool = False
    timed_out: bool = False
    request_id: str = ""
    decided_at: str | None = None
    stages: tuple[StageResult, ...] = field(default_factory=tuple)

    @property
    def rejected(self) -> bool:
        return self.status == ApprovalStatus.REJECTED

    def stage(self, name: str) -> StageResult:
        for result in self.stages:
            if result.name == name:
                return result
        raise KeyError(name)

    @classmethod
    def from_resolution(cls, data: dict) -> "Decision":
        stages = tuple(
            StageResult(
                name=s["name"],
                status=s["status"],
                approved_by=tuple(s.get("approved_by") or ()),
                decided_by=s.get("decided_by"),
                reason=s.get("reason") or "",
                timed_out=bool(s.get("timed_out")),
                escalated=bool(s.get("escalated")),
            )
            for s in data.get("stages", ())
        )
        return cls(
            status=data["status"],
            approved=bool(data["approved"]),
            value=data.get("value"),
            original_value=data.get("original_value"),
            reason=data.get("reason") or "",
            decided_by=data.get("decided_by"),
            decided_by_id=data.get("decided_by_id"),
            edited=bool(data.get("edited")),
            timed_out=bool(data.get("timed_out")),
            request_id=data.get("request_id", ""),
            decided_at=data.get("decided_at"),
            stages=stages,
        )


def request_approval(
    ctx: Context,
    key: str,
    *,
    title: str,
    payload: Any = None,
    stages: Sequence[Stage] | None = None,
    requester: Any = None,
    editable: bool = False,
    schema: dict | None = None,
    timeout: float | timedelta | None = None,
    on_timeout: str = OnTimeout.REJECT,
    description: str = "",
) -> Decision:
    """Ask people to approve ``payload`` in ``stages`` (in order) and return their ``Decision``.

    The run waits (holding no worker) until the request is decided. ``requester`` (a username,
    id or user) may never approve it (four-eyes). With ``editable`` a reviewer may approve a
    changed value, validated against ``schema`` (JSON Schema) when given. ``timeout`` /
    ``on_timeout`` are the defaults for stages that set none; without stages a single stage
    ``approval`` is created that only holders of ``approvals.decide_any`` can decide.
    """
    if on_timeout not in ON_TIMEOUT:
        raise ValueError(f"on_timeout must be one of {ON_TIMEOUT}.")
    stages = list(stages) if stages else [Stage("approval")]
    names = [s.name for s in stages]
    if len(set(names)) != len(names):
        raise ValueError(f"Approval '{key}': stage names must be unique, got {names}.")
    if schema is not None:
        check_json_schema(schema, key)
    specs = [s.spec(timeout=timeout, on_timeout=on_timeout) for s in stages]
    payload = to_json(payload, what=f"payload of approval '{key}'")
    requester = _ref(requester)

    def on_create(wait) -> None:
        from .services import approval_create

        approval_create(
            wait=wait,
            key=key,
            title=title,
            description=description,
            payload=payload,
            schema=schema,
            editable=editable,
            requester=requester,
            stages=specs,
        )

    outcome = ctx._wait(
        key,
        WaitKind.APPROVAL,
        request={"title": title, "stages": names},
        on_create=on_create,
    )
    data = outcome.get("data")
    if not data:  # closed without a decision record (cannot normally happen)
        data = {
            "status": ApprovalStatus.CANCELLED,
            "approved": False,
            "value": payload,
            "original_value": payload,
            "reason": "Closed without a decision.",
        }
    return Decision.from_resolution(data)


def gate(
    ctx: Context,
    name: str,
    fn: Callable[..., Any],
    *args: Any,
    requires_approval: bool | Callable[..., bool] = True,
    description: str | Callable[..., str] | None = None,
    stages: Sequence[Stage] | None = None,
    requester: Any = None,
    editable: bool = False,
    schema: dict | None = None,
    timeout: float | timedelta | None = None,
    on_timeout: str = OnTimeout.REJECT,
    retries: int | None = None,
    backoff: float | timedelta | None = None,
    **kwargs: Any,
) -> Any:
    """Run ``fn(*args, **kwargs)`` as step ``name``, but only once approved when
    ``requires_approval(*args, **kwargs)`` says so (at once otherwise).

    Reviewers see the call's arguments (``{"function", "args", "kwargs"}``) and
    ``description(*args, **kwargs)`` as the title. With ``editable`` they may change the
    arguments; the step then runs with the edited ones. A call that is not approved does not
    run: ``GateRejected`` (with the ``decision``) is raised into the workflow.
    """
    needed = (
        requires_approval(*args, **kwargs) if callable(requires_approval) else requires_approval
    )
    if needed:
        call = to_json(
            {
                "function": f"{fn.__module__}.{fn.__qualname__}",
                "args": list(args),
                "kwargs": kwargs,
            },
            what=f"arguments of gated call '{name}'",
        )
        title = description(*args, **kwargs) if callable(description) else description
        if editable and schema is None:
            schema = {
                "type": "object",
                "required": ["args", "kwargs"],
                "properties": {"args": {"type": "array"}, "kwargs": {"type": "object"}},
            }
        decision = request_approval(
            ctx,
            f"{name}:approval",
            title=title or f"Run {name}",
            payload=call,
            stages=stages,
            requester=requester,
            editable=editable,
            schema=schema,
            timeout=timeout,
            on_timeout=on_timeout,
            description=f"Gated call {call['function']}",
        )
        if not decision.approved:
            raise GateRejected(name, decision)
        if decision.edited:
            args, kwargs = tuple(decision.value["args"]), dict(decision.value["kwargs"])
    return ctx.step(name, fn, *args, retries=retries, backoff=backoff, **kwargs)
