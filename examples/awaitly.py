"""Ports of the awaitly ``hitl`` seed (shared/seeds/001_becd3ac42a343964.txt): approval steps,
edit before approve, pre-execution gating, multi-stage approvals by amount, timeouts,
escalation, crash recovery, and failures after approval that a retry resumes.

The seed's snapshot / orchestrator / "recover on startup" machinery is the engine itself: every
step and decision is in the database, and a worker that starts takes over any run whose worker
died (its lease expired).
"""

from datetime import timedelta

from rest_framework import serializers

from approvals import GateRejected, Stage, gate, request_approval
from workflows import Context, workflow

from .outside import apply_effect, check_available

# --- refund: an approval step with edit, auto-rejected after 24 hours -----------------------

REFUND_TIMEOUT = timedelta(hours=24)


class RefundInput(serializers.Serializer):
    order_id = serializers.CharField(max_length=100)
    amount = serializers.IntegerField(min_value=1, help_text="The order's total.")
    requested_by = serializers.CharField(max_length=150)


def calculate_refund(order_id: str, total: int) -> int:
    # Stand-in for reading the order: the whole total is refundable.
    return total


def process_refund(ctx: Context, order_id: str, amount: int) -> dict:
    check_available("payments")
    return apply_effect(
        run_id=ctx.run_id,
        kind="refund",
        target=order_id,
        data={"amount": amount},
        key=ctx.idempotency_key,
    )


@workflow("awaitly-refund", input=RefundInput)
def awaitly_refund(ctx: Context, data: dict) -> dict:
    """awaitly's refund approval (seed 001_becd3ac42a343964.txt).

    ``calculate-refund``, then a manager approves, rejects or edits the amount (5000 edited
    to 4500 refunds 4500; reviewers may lower it, never raise it); unanswered for 24 hours it
    is rejected automatically; then ``process-refund`` with the approved value.
    """
    order_id = data["order_id"]
    amount = ctx.step("calculate-refund", calculate_refund, order_id, data["amount"])
    decision = request_approval(
        ctx,
        "approve-refund",
        title=f"Refund {amount} for order {order_id}",
        payload={"amount": amount},
        stages=[Stage("manager", groups=["managers"])],
        requester=data["requested_by"],
        editable=True,
        schema={
            "type": "object",
            "required": ["amount"],
            "properties": {"amount": {"type": "integer", "minimum": 1, "maximum": amount}},
            "additionalProperties": False,
        },
        timeout=REFUND_TIMEOUT,
        on_timeout="reject",
    )
    if not decision.approved:
        return {"refunded": False, "status": decision.status, "reason": decision.reason}
    refunded = decision.value["amount"]
    ctx.step("process-refund", process_refund, ctx, order_id, refunded, retries=3, backoff=30)
    return {
        "refunded": True,
        "amount": refunded,
        "original_amount": decision.original_value["amount"],
        "edited": decision.edited,
        "approved_by": decision.decided_by,
    }


# --- gated calls: outside emails and /important/ deletes wait for a reviewer ----------------

COMPANY_DOMAIN = "@mycompany.com"


class EmailInput(serializers.Serializer):
    to = serializers.EmailField()
    subject = serializers.CharField(max_length=200)
    body = serializers.CharField(allow_blank=True, default="")


class AgentActionsInput(serializers.Serializer):
    emails = EmailInput(many=True, required=False, default=list)
    deletes = serializers.ListField(
        child=serializers.CharField(max_length=500), required=False, default=list
    )
    requested_by = serializers.CharField(max_length=150)


def send_email(to: str, subject: str, body: str) -> dict:
    check_available("mail")
    return apply_effect(
        run_id=None, kind="email", target=to, data={"subject": subject, "body": body}
    )


def delete_file(path: str) -> dict:
    return apply_effect(run_id=None, kind="delete", target=path)


def is_external(to: str, subject: str, body: str) -> bool:
    return not to.lower().endswith(COMPANY_DOMAIN)


def is_important(path: str) -> bool:
    return path.startswith("/important/")


REVIEWERS = [Stage("review", groups=["reviewers"])]


@workflow("awaitly-agent-actions", input=AgentActionsInput)
def awaitly_agent_actions(ctx: Context, data: dict) -> dict:
    """awaitly's pre-execution gating (seed 001_becd3ac42a343964.txt).

    An agent's planned calls run at once when harmless, and only after a reviewer approved
    them (seeing the arguments) when not: emails to outside domains, deletes under
    ``/important/``. A rejected call never runs; the others go ahead.
    """
    done: list[dict] = []
    for index, email in enumerate(data["emails"]):
        to, subject, body = email["to"], email["subject"], email["body"]
        done.append(
            _gated(
                ctx,
                f"send-email-{index}",
                send_email,
                to,
                subject,
                body,
                requires_approval=is_external,
                description=lambda to, subject, body: f'Send email to {to}: "{subject}"',
                requester=data["requested_by"],
            )
        )
    for index, path in enumerate(data["deletes"]):
        done.append(
            _gated(
                ctx,
                f"delete-file-{index}",
                delete_file,
                path,
                requires_approval=is_important,
                description=lambda path: f"Delete file: {path}",
                requester=data["requested_by"],
            )
        )
    return {"actions": done}


def _gated(ctx: Context, name: str, fn, *args, **options) -> dict:
    try:
        result = gate(ctx, name, fn, *args, stages=REVIEWERS, **options)
    except GateRejected as exc:
        return {"action": name, "done": False, "reason": exc.decision.reason}
    return {"action": name, "done": True, "result": result}


# --- expense: stages by amount, escalation after 4 hours, retry after a failure -------------

ESCALATE_AFTER = timedelta(hours=4)
DECIDE_WITHIN = timedelta(hours=24)


class ExpenseInput(serializers.Serializer):
    amount = serializers.IntegerField(min_value=1)
    description = serializers.CharField(max_length=200)
    requested_by = serializers.CharField(max_length=150)


def validate_expense(amount: int, description: str) -> dict:
    return {"amount": amount, "description": description.strip()}


def pay_expense(ctx: Context, requested_by: str, amount: int) -> dict:
    check_available("payments")
    return apply_effect(
        run_id=ctx.run_id,
        kind="payment",
        target=requested_by,
        data={"amount": amount},
        key=ctx.idempotency_key,
    )


def expense_stages(amount: int) -> list[Stage]:
    """Manager always (escalated to a senior manager after 4 h), finance above 1000, CEO above
    10000. Plain Python: the stages are part of the run's deterministic replay."""
    stages = [
        Stage(
            "manager",
            groups=["managers"],
            timeout=ESCALATE_AFTER,
            on_timeout="escalate",
            escalate_to="senior-managers",
        )
    ]
    if amount > 1000:
        stages.append(Stage("finance", groups=["finance"]))
    if amount > 10000:
        stages.append(Stage("ceo", groups=["ceo"]))
    return stages


@workflow("awaitly-expense", input=ExpenseInput)
def awaitly_expense(ctx: Context, data: dict) -> dict:
    """awaitly's multi-stage expense approval (seed 001_becd3ac42a343964.txt).

    ``validate-expense``; approval by the manager (after 4 h without a decision it goes to
    the senior managers), finance above 1000 and the CEO above 10000, each stage rejecting
    after 24 h; then ``process-expense``. If processing still fails after its retries the run
    fails with its approvals kept: ``workflows.retry`` (admin, API) continues from the failed
    step without asking anyone again. A worker killed mid-step is replaced: the next worker
    to start takes the run over and the payment, keyed by the step's idempotency key, is
    made once.
    """
    expense = ctx.step("validate-expense", validate_expense, data["amount"], data["description"])
    amount = expense["amount"]
    decision = request_approval(
        ctx,
        "expense-approval",
        title=f"Expense of {amount}: {expense['description']}",
        payload=expense,
        stages=expense_stages(amount),
        requester=data["requested_by"],
        timeout=DECIDE_WITHIN,
        on_timeout="reject",
    )
    if not decision.approved:
        return {"paid": False, "status": decision.status, "reason": decision.reason}
    # Not caught: after the last attempt the run fails and keeps its approvals for a retry.
    payment = ctx.step(
        "process-expense", pay_expense, ctx, data["requested_by"], amount, retries=2, backoff=60
    )
    return {
        "paid": True,
        "amount": amount,
        "payment": payment["effect_id"],
        "approvals": [
            {"stage": s.name, "by": list(s.approved_by), "escalated": s.escalated}
            for s in decision.stages
        ],
    }
