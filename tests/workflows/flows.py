"""Workflows used by the engine tests (also loaded by worker processes in multi-process tests
through HITL_WORKFLOW_MODULES=tests.workflows.flows)."""

from collections import Counter
from datetime import timedelta

from rest_framework import serializers

from workflows import workflow

# Executions of step functions in this process, keyed by the step's idempotency key.
executions: Counter = Counter()
failures_left: dict[str, int] = {}


def count(ctx, value):
    executions[ctx.idempotency_key] += 1
    return value


@workflow("counter", description="Three steps with event waits between them.")
def counter(ctx, data):
    a = ctx.step("first", count, ctx, 1)
    first_event, _ = ctx.wait_for_event("go-1", f"go-1-{data['tag']}")
    b = ctx.step("second", count, ctx, 2)
    ctx.wait_for_event("go-2", f"go-2-{data['tag']}")
    c = ctx.step("third", count, ctx, 3)
    return {"sum": a + b + c, "first_event": first_event}


@workflow("event-timeout")
def event_timeout(ctx, data):
    payload, timed_out = ctx.wait_for_event("approval", data["event_id"], timeout=300)
    return {"payload": payload, "timed_out": timed_out}


@workflow("sleeper")
def sleeper(ctx, data):
    before = ctx.now()
    ctx.sleep("nap", timedelta(seconds=data["seconds"]))
    after = ctx.now()
    return {"slept": (after - before).total_seconds()}


def flaky(key):
    if failures_left.get(key, 0) > 0:
        failures_left[key] -= 1
        raise ConnectionError(f"upstream unavailable ({failures_left[key]} failures left)")
    return "ok"


@workflow("flaky")
def flaky_flow(ctx, data):
    ctx.step("before", count, ctx, "before")
    result = ctx.step("call-upstream", flaky, data["key"], retries=data["retries"], backoff=10)
    return {"result": result}


class OrderInput(serializers.Serializer):
    order_id = serializers.IntegerField(min_value=1)
    amount = serializers.DecimalField(max_digits=10, decimal_places=2)


@workflow("typed", input=OrderInput)
def typed(ctx, data):
    return {"order_id": data["order_id"], "amount": data["amount"]}


@workflow("ask")
def ask(ctx, data):
    answer = ctx.input_request(
        "review",
        prompt="Approve the draft?",
        metadata={"draft": data.get("draft", 1)},
        schema={
            "type": "object",
            "required": ["approved"],
            "properties": {"approved": {"type": "boolean"}, "note": {"type": "string"}},
        },
        timeout=timedelta(hours=1),
    )
    return {"answer": answer.data, "timed_out": answer.timed_out}


@workflow("emitter")
def emitter(ctx, data):
    ctx.emit("progress", {"pct": 50})
    token = ctx.uuid4()
    ctx.wait_for_event("resume", f"emit-{data['tag']}")
    return {"token": str(token)}


@workflow("versioned", version=1)
def versioned_v1(ctx, data):
    ctx.wait_for_event("wait", f"ver-{data['tag']}")
    return {"version": 1}


@workflow("versioned", version=2)
def versioned_v2(ctx, data):
    ctx.wait_for_event("wait", f"ver-{data['tag']}")
    return {"version": 2}


# Test code swaps the first step's name between two advances to simulate a careless deploy.
mutable = {"first": "charge-card"}


@workflow("mutable")
def mutable_flow(ctx, data):
    ctx.step(mutable["first"], count, ctx, 1)
    ctx.wait_for_event("go", f"mutable-{data['tag']}")
    return "done"


@workflow("fails-then-fixed")
def fails_then_fixed(ctx, data):
    ctx.step("prepare", count, ctx, "prepared")
    ctx.step("charge", flaky, data["key"])
    ctx.step("receipt", count, ctx, "sent")
    return "charged"
