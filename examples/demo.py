"""Demo accounts and runs for ``manage.py hitl_demo``: a living queue for a new user.

Everything here is idempotent: accounts are created once (an existing account keeps its
password), and each demo run has an idempotency key, so a second call starts nothing new.
"""

from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.db import transaction

from workflows import start
from workflows.engine import advance
from workflows.models import WorkflowRun

DEMO_PASSWORD = "hitl-demo"

# Every demo account may use the admin and see runs there (reviewers see the runs they are
# asked to decide; the approvals app widens run visibility for them).
STAFF_PERMISSIONS = ["workflows.view_workflowrun", "approvals.view_approvalrequest"]
OPERATOR_PERMISSIONS = [
    "workflows.add_workflowrun",
    "workflows.manage_any_run",
    "workflows.send_event",
    "workflows.answer_any_input",
]


@dataclass(frozen=True)
class Account:
    username: str
    groups: tuple[str, ...]
    role: str


ACCOUNTS = [
    Account("requester", (), "asks for refunds and expenses; may never approve them"),
    Account("manager", ("managers",), "first stage of refunds and expenses"),
    Account("manager2", ("managers",), "a second manager"),
    Account("finance", ("finance",), "expenses above 1000"),
    Account("ceo", ("ceo",), "expenses above 10000"),
    Account("senior-manager", ("senior-managers",), "expenses escalated after 4 hours"),
    Account("reviewer", ("reviewers",), "gated emails and deletes"),
    Account("operator", ("operators",), "sends events, answers input, cancels and retries runs"),
]


@dataclass(frozen=True)
class AccountResult:
    account: Account
    created: bool


def ensure_accounts() -> list[AccountResult]:
    """Create the groups and demo accounts that do not exist yet."""
    User = get_user_model()
    results = []
    with transaction.atomic():
        operators, _ = Group.objects.get_or_create(name="operators")
        operators.permissions.add(*_permissions(OPERATOR_PERMISSIONS))
        staff_permissions = _permissions(STAFF_PERMISSIONS)
        for account in ACCOUNTS:
            user = User.objects.filter(username=account.username).first()
            created = user is None
            if created:
                user = User.objects.create_user(
                    account.username,
                    email=f"{account.username}@mycompany.com",
                    password=DEMO_PASSWORD,
                    is_staff=True,
                )
            user.user_permissions.add(*staff_permissions)
            for name in account.groups:
                user.groups.add(Group.objects.get_or_create(name=name)[0])
            results.append(AccountResult(account, created))
    return results


def operator_token() -> str:
    from rest_framework.authtoken.models import Token

    user = get_user_model().objects.get(username="operator")
    return Token.objects.get_or_create(user=user)[0].key


def _permissions(names: list[str]) -> list[Permission]:
    found = []
    for name in names:
        app_label, codename = name.split(".")
        found.append(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    return found


@dataclass(frozen=True)
class DemoRun:
    workflow: str
    key: str
    input: dict[str, Any]


DEMO_RUNS = [
    DemoRun("upstash-approval", "demo-upstash-1", {"user_id": "u-17", "action": "export data"}),
    DemoRun("upstash-approval", "demo-upstash-2", {"user_id": "u-42", "action": "close account"}),
    DemoRun(
        "awaitly-refund",
        "demo-refund-1",
        {"order_id": "A-1001", "amount": 5000, "requested_by": "requester"},
    ),
    DemoRun(
        "awaitly-refund",
        "demo-refund-2",
        {"order_id": "A-1002", "amount": 120, "requested_by": "requester"},
    ),
    DemoRun(
        "awaitly-agent-actions",
        "demo-agent-1",
        {
            "emails": [
                {"to": "team@mycompany.com", "subject": "Weekly report", "body": "Attached."},
                {"to": "partner@example.org", "subject": "Price list", "body": "Attached."},
            ],
            "deletes": ["/tmp/cache.json", "/important/customers.csv"],
            "requested_by": "requester",
        },
    ),
    *(
        DemoRun(
            "awaitly-expense",
            f"demo-expense-{amount}",
            {"amount": amount, "description": description, "requested_by": "requester"},
        )
        for amount, description in [
            (250, "Team lunch"),
            (4200, "Conference tickets"),
            (15000, "New laptops"),
        ]
    ),
    DemoRun(
        "trigger-content-approval",
        "demo-content-1",
        {"topic": "Durable workflows in Django", "draft_id": "launch-post"},
    ),
    DemoRun(
        "trigger-content-approval",
        "demo-content-2",
        {"topic": "Pricing FAQ", "draft_id": "pricing-faq", "max_revisions": 1},
    ),
    DemoRun(
        "blazen-document-review",
        "demo-review-1",
        {"title": "Q3 report", "sections": ["outline", "summary"]},
    ),
    DemoRun("resonate-promise", "hitl-001", {"workflow_id": "hitl-001"}),
    DemoRun("resonate-promise", "hitl-002", {"workflow_id": "hitl-002"}),
]


def start_demo_runs() -> list[tuple[DemoRun, WorkflowRun, bool]]:
    """Start each demo run unless it exists; returns ``(demo, run, created)``."""
    requester = get_user_model().objects.get(username="requester")
    started = []
    for demo in DEMO_RUNS:
        existing = WorkflowRun.objects.filter(
            workflow_name=demo.workflow, idempotency_key=demo.key
        ).exists()
        run = start(demo.workflow, demo.input, idempotency_key=demo.key, created_by=requester)
        started.append((demo, run, not existing))
    return started


def advance_until_waiting(run_ids: list[Any], max_advances: int = 20) -> None:
    """Advance runs in this process until each waits or finishes (no worker needed to see
    the queue; a running cluster may take part, the engine's claim keeps them apart)."""
    for run_id in run_ids:
        for _ in range(max_advances):
            # Anything else (waiting, finished, parked for a retry, held by a worker) is
            # the workers' business from here on.
            if advance(run_id) != "yielded":
                break
