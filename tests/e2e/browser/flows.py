"""Workflows the browser tests start in the real worker (``HITL_WORKFLOW_MODULES``)."""

from approvals import Stage, request_approval
from workflows import workflow

EXPENSE_SCHEMA = {
    "type": "object",
    "required": ["amount"],
    "properties": {
        "amount": {"type": "integer", "minimum": 1, "maximum": 100000},
        "note": {"type": "string", "maxLength": 120},
    },
}


def check_budget(amount: int) -> dict:
    return {"within_budget": amount <= 5000}


def pay(amount: int) -> dict:
    return {"paid_amount": amount}


@workflow("browser-expense")
def browser_expense(ctx, data):
    """A step, an editable approval for the reviewers, then payment: a timeline that ends."""
    ctx.step("check-budget", check_budget, data["amount"])
    decision = request_approval(
        ctx,
        "expense-approval",
        title=data["title"],
        payload={"amount": data["amount"], "note": data.get("note", "")},
        stages=[Stage("review", groups=["reviewers"])],
        requester=data["requested_by"],
        editable=True,
        schema=EXPENSE_SCHEMA,
    )
    if not decision.approved:
        return {"paid": False, "reason": decision.reason}
    receipt = ctx.step("pay", pay, decision.value["amount"])
    return {"paid": True, **receipt}


@workflow("browser-input")
def browser_input(ctx, data):
    """A typed input request answered on the run page."""
    answer = ctx.input_request(
        "confirm-shipping",
        prompt=f"Ship order {data['order']}?",
        schema={
            "type": "object",
            "required": ["ship"],
            "properties": {
                "ship": {"type": "boolean", "title": "Ship it"},
                "carrier": {"enum": ["DHL", "UPS"], "title": "Carrier"},
            },
        },
    )
    ctx.step("ship", lambda: {"shipped": bool(answer.data["ship"])})
    return answer.data
