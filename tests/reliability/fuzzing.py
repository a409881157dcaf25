"""What the HTTP fuzz tests share: JSON of every shape, the objects they aim at, and a
snapshot of everything a refused request must leave as it was."""

from collections import Counter
from typing import Any

from django.contrib.auth.models import User
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

# Imported to register the workflows the targets start (approvals-simple; event-timeout, ask).
import tests.approvals.flows
import tests.workflows.flows  # noqa: F401
from approvals.models import (
    ApprovalAccess,
    ApprovalRequest,
    ApprovalStage,
    ApprovalStatus,
    DecisionRecord,
)
from tests.approvals.conftest import make_user
from workflows import start
from workflows.models import (
    EventMessage,
    RunEvent,
    WaitKind,
    WaitPoint,
    WaitStatus,
    WebhookReceipt,
    WorkflowRun,
)
from workflows.testing import run_until_idle


def _containers(inner: st.SearchStrategy) -> st.SearchStrategy:
    # A function, not a lambda: hypothesis reads a lambda's source to check that it recurses,
    # and warns when it cannot find it.
    return st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    _containers,
    max_leaves=8,
)


def maybe(strategy: st.SearchStrategy) -> st.SearchStrategy:
    """The field as meant, or any JSON in its place."""
    return st.one_of(strategy, json_values)


def snapshot() -> dict[str, Any]:
    """Everything a request could change (the tests' tables are small)."""
    return {
        "receipts": WebhookReceipt.objects.count(),
        "decisions": DecisionRecord.objects.count(),
        "requests": list(
            ApprovalRequest.objects.order_by("pk").values_list("pk", "status", "value")
        ),
        "stages": list(
            ApprovalStage.objects.order_by("pk").values_list(
                "pk", "status", "claimed_by", "escalation_count"
            )
        ),
        "stage_users": ApprovalStage.users.through.objects.count(),
        "stage_groups": ApprovalStage.groups.through.objects.count(),
        "access": ApprovalAccess.objects.count(),
        "events": EventMessage.objects.count(),
        "waits": list(WaitPoint.objects.order_by("pk").values_list("pk", "status", "resolution")),
        "run_events": RunEvent.objects.count(),
        "runs": list(WorkflowRun.objects.order_by("pk").values_list("pk", "status")),
        "users": User.objects.count(),
    }


class Target:
    """A pending approval (one stage for the reviewers group, editable), a run waiting for the
    event ``fuzz-event`` and an open input request; each replaced when an accepted request
    settles it, so every example has something to hit."""

    def __init__(self) -> None:
        make_user("ann", "reviewers")
        make_user("otto")
        self.refresh()

    def refresh(self) -> None:
        pending = ApprovalRequest.objects.filter(status=ApprovalStatus.PENDING)
        if not pending.exists():
            start("approvals-simple", {"editable": True, "title": "Fuzzed"})
        events = WaitPoint.objects.filter(event_id="fuzz-event", status=WaitStatus.OPEN)
        if not events.exists():
            start("event-timeout", {"event_id": "fuzz-event"})
        inputs = WaitPoint.objects.filter(kind=WaitKind.INPUT, status=WaitStatus.OPEN)
        if not inputs.exists():
            start("ask", {}, created_by=User.objects.get(username="ann"))
        run_until_idle()
        self.approval = pending.latest("created_at")
        self.input = inputs.latest("created_at")
        self.event_run = events.latest("created_at").run


def fuzz_settings(examples: int) -> settings:
    """One database for every example (a test's fixtures run once), no time limit per request."""
    return settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


def check_answer(response: Any, before: dict[str, Any], context: Any) -> None:
    """Never a 5xx; a refusal says what is wrong and leaves the database as it was."""
    assert response.status_code < 500, (context, response.content)
    if response.status_code >= 400:
        assert response.json().get("message"), (context, response.content)
        assert snapshot() == before, (context, response.json())


def status_figures(statuses: Counter, **extra: Any) -> dict[str, Any]:
    accepted = sum(n for code, n in statuses.items() if code < 300)
    return {
        "requests": sum(statuses.values()),
        "accepted": accepted,
        "refused_with_nothing_changed": sum(statuses.values()) - accepted,
        "status_codes": {str(code): n for code, n in sorted(statuses.items())},
        "5xx": sum(n for code, n in statuses.items() if code >= 500),
        **extra,
    }
