"""Workflows for the multi-process tests; worker processes load them through
HITL_WORKFLOW_MODULES=tests.e2e.flows. Each step appends to a side-effect ledger in the
database, so the test can count how often each step's code really ran."""

import os
import time

from django.db import connection

from workflows import workflow

LEDGER_DDL = [
    "CREATE TABLE IF NOT EXISTS hitl_test_ledger (key VARCHAR(100) NOT NULL, pid INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS hitl_test_effects (key VARCHAR(100) PRIMARY KEY)",
]
LEDGER_DROP = ["DROP TABLE IF EXISTS hitl_test_ledger", "DROP TABLE IF EXISTS hitl_test_effects"]


def side_effect(ctx, label: str, seconds: float) -> str:
    key = ctx.idempotency_key

    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO hitl_test_ledger (key, pid) VALUES (%s, %s)", [key, os.getpid()]
        )
    time.sleep(seconds)  # long enough for a SIGKILL to land inside the step
    with connection.cursor() as cursor:
        # The effect an outside system would apply once per idempotency key.
        cursor.execute(
            "INSERT INTO hitl_test_effects (key) VALUES (%s) ON CONFLICT DO NOTHING", [key]
        )
    return label


@workflow("crashable", description="Step, durable sleep, slow step, event wait, step.")
def crashable(ctx, data):
    a = ctx.step("one", side_effect, ctx, "one", 0.2)
    ctx.sleep("pause", 1)
    b = ctx.step("two", side_effect, ctx, "two", 0.6)
    event, _ = ctx.wait_for_event("go", f"crash-go-{data['n']}")
    c = ctx.step("three", side_effect, ctx, "three", 0.2)
    return {"steps": [a, b, c], "event": event}
