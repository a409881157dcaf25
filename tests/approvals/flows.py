"""Workflows used by the approvals tests (registered by import in conftest.py)."""

from datetime import timedelta

from approvals import Stage, gate, request_approval
from workflows import workflow

# Calls of side-effect functions in this process, to prove what ran and what did not.
calls: list = []


def record(kind, value):
    calls.append((kind, value))
    return value


@workflow("approvals-simple")
def simple(ctx, data):
    """One stage, options from the input: the workhorse of the rule tests."""
    decision = request_approval(
        ctx,
        "approve",
        title=data.get("title", "Simple request"),
        payload=data.get("payload", {"amount": 100}),
        stages=[
            Stage(
                "review",
                users=data.get("users", ()),
                groups=data.get("groups", ["reviewers"]),
                required=data.get("required", 1),
            )
        ],
        requester=data.get("requester"),
        editable=data.get("editable", False),
        schema=data.get("schema"),
    )
    return {
        "status": decision.status,
        "approved": decision.approved,
        "value": decision.value,
        "original_value": decision.original_value,
        "reason": decision.reason,
        "decided_by": decision.decided_by,
        "edited": decision.edited,
    }


@workflow("expense")
def expense(ctx, data):
    """The awaitly seed's chain: manager always, finance above 1000, CEO above 10000."""
    amount = data["amount"]
    stages = [Stage("manager", groups=["managers"])]
    if amount > 1000:
        stages.append(Stage("finance", groups=["finance"]))
    if amount > 10000:
        stages.append(Stage("ceo", users=["ceo"]))
    decision = request_approval(
        ctx,
        "expense-approval",
        title=f"Expense of {amount}",
        payload={"amount": amount},
        stages=stages,
        requester=data["requested_by"],
    )
    if not decision.approved:
        return {"paid": False, "status": decision.status, "reason": decision.reason}
    ctx.step("pay", record, "paid", decision.value["amount"])
    return {
        "paid": True,
        "amount": decision.value["amount"],
        "stages": [(s.name, s.status, list(s.approved_by)) for s in decision.stages],
    }


BUDGET_SCHEMA = {
    "type": "object",
    "required": ["budget"],
    "properties": {"budget": {"type": "integer", "minimum": 0, "maximum": 5000}},
    "additionalProperties": False,
}


@workflow("budget")
def budget(ctx, data):
    decision = request_approval(
        ctx,
        "budget",
        title="Marketing budget",
        payload={"budget": data["budget"]},
        stages=[Stage("manager", groups=["managers"])],
        editable=True,
        schema=BUDGET_SCHEMA,
    )
    spent = ctx.step("allocate", record, "allocated", decision.value["budget"])
    return {"allocated": spent, "original": decision.original_value["budget"]}


def send_email(to, subject):
    calls.append(("email", to, subject))
    return {"sent_to": to}


@workflow("gated-email")
def gated_email(ctx, data):
    result = gate(
        ctx,
        "send-email",
        send_email,
        data["to"],
        data["subject"],
        requires_approval=lambda to, subject: not to.endswith("@mycompany.com"),
        description=lambda to, subject: f'Send email to {to}: "{subject}"',
        stages=[Stage("review", groups=["reviewers"])],
        editable=True,
    )
    return result


@workflow("deadline")
def deadline(ctx, data):
    """A stage with a 1 hour deadline; the input picks the timeout action."""
    decision = request_approval(
        ctx,
        "deadline",
        title="Deadline test",
        payload={"n": 1},
        stages=[
            Stage(
                "first",
                groups=["managers"],
                timeout=timedelta(hours=1),
                on_timeout=data["on_timeout"],
                escalate_to=data.get("escalate_to"),
                remind_every=data.get("remind_every"),
            ),
            *([Stage("second", groups=["finance"])] if data.get("second") else []),
        ],
    )
    return {
        "status": decision.status,
        "approved": decision.approved,
        "timed_out": decision.timed_out,
        "decided_by": decision.decided_by,
        "stages": [(s.name, s.status) for s in decision.stages],
    }
