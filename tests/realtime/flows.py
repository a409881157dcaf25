"""Workflows for the realtime tests (worker processes load them through
HITL_WORKFLOW_MODULES=tests.realtime.flows)."""

from approvals import Stage, request_approval
from workflows import workflow


def prepare(order_id):
    return {"order_id": order_id, "prepared": True}


def apply(decision):
    return {"applied": decision}


@workflow("rt-review", description="A step, a wait for a decision, a step.")
def review(ctx, data):
    ctx.step("prepare", prepare, data["order_id"])
    ctx.emit("progress", {"pct": 50})
    decision, timed_out = ctx.wait_for_event("decision", f"decision-{data['tag']}")
    ctx.step("apply", apply, decision)
    return {"decision": decision, "timed_out": timed_out}


@workflow("rt-two-decisions", description="Two waits, so events happen while a client is away.")
def two_decisions(ctx, data):
    ctx.step("prepare", prepare, data["order_id"])
    first, _ = ctx.wait_for_event("first", f"first-{data['tag']}")
    ctx.step("middle", apply, first)
    second, _ = ctx.wait_for_event("second", f"second-{data['tag']}")
    ctx.step("apply", apply, second)
    return {"first": first, "second": second}


@workflow("rt-approval", description="One approval stage decided by the user 'rita'.")
def approval(ctx, data):
    decision = request_approval(
        ctx,
        "sign-off",
        title=f"Sign off {data['tag']}",
        payload={"tag": data["tag"]},
        stages=[Stage("review", users=["rita"])],
    )
    return {"status": decision.status}
