"""Workflows for the fault-injection suite (worker processes load them through
HITL_WORKFLOW_MODULES=tests.reliability.flows). Every step appends to a ledger with the time
it started, so a test can tell whether a step ran again after it was recorded."""

import os
import time

from django.db import connection

from workflows import workflow

LEDGER_DDL = [
    "CREATE TABLE IF NOT EXISTS hitl_rel_ledger "
    "(key VARCHAR(100) NOT NULL, pid INTEGER NOT NULL, started DOUBLE PRECISION NOT NULL)",
    "CREATE TABLE IF NOT EXISTS hitl_rel_effects (key VARCHAR(100) PRIMARY KEY)",
    # No unique key: an atomic step's write that committed twice would show as two rows.
    "CREATE TABLE IF NOT EXISTS hitl_rel_atomic (key VARCHAR(100) NOT NULL)",
]
LEDGER_DROP = [
    "DROP TABLE IF EXISTS hitl_rel_ledger",
    "DROP TABLE IF EXISTS hitl_rel_effects",
    "DROP TABLE IF EXISTS hitl_rel_atomic",
]


def effect(ctx, seconds: float) -> str:
    key = ctx.idempotency_key
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO hitl_rel_ledger (key, pid, started) VALUES (%s, %s, %s)",
            [key, os.getpid(), time.time()],
        )
    time.sleep(seconds)
    with connection.cursor() as cursor:
        # What an outside system keyed by the idempotency key would apply: once.
        cursor.execute(
            "INSERT INTO hitl_rel_effects (key) VALUES (%s) ON CONFLICT DO NOTHING", [key]
        )
    return key


def atomic_effect(ctx, seconds: float) -> str:
    """Written inside the step's transaction (atomic=True): committed once or not at all."""
    with connection.cursor() as cursor:
        cursor.execute("INSERT INTO hitl_rel_atomic (key) VALUES (%s)", [ctx.idempotency_key])
    time.sleep(seconds)
    return ctx.idempotency_key


@workflow(
    "storm",
    description="Six steps (one batched, one atomic) and a durable sleep, for SIGKILL storms.",
)
def storm(ctx, data):
    keys = [ctx.step("a", effect, ctx, 0.05), ctx.step("b", effect, ctx, 0.15)]
    ctx.sleep("pause", 0.5)
    keys += [ctx.step("c", effect, ctx, 0.1), ctx.step("d", effect, ctx, 0.05)]
    # Written only with the atomic step's start: a kill before that runs it again.
    keys.append(ctx.step("f", effect, ctx, 0.05, batched=True))
    keys.append(ctx.step("e", atomic_effect, ctx, 0.05, atomic=True))
    return {"steps": len(keys)}


@workflow("slow-step", description="One long step, to cut the database under it.")
def slow_step(ctx, data):
    ctx.step("long", effect, ctx, data.get("seconds", 3))
    return {"done": True}
