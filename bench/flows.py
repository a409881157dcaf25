"""Workflows for the benchmarks (loaded by bench workers via HITL_WORKFLOW_MODULES)."""

from django.db import connection

from approvals import Stage, request_approval
from workflows import workflow

# ``at`` records when each write committed (autocommit), so a benchmark can find the last one.
TABLE_DDL = (
    "CREATE TABLE IF NOT EXISTS bench_writes "
    "(run_key VARCHAR(100), n INTEGER, at TIMESTAMPTZ DEFAULT clock_timestamp())"
)


def write(key: str, n: int) -> int:
    with connection.cursor() as cursor:
        cursor.execute("INSERT INTO bench_writes (run_key, n) VALUES (%s, %s)", [key, n])
    return n


@workflow("bench-3-steps")
def three_steps(ctx, data):
    total = 0
    for n in range(3):
        total += ctx.step(f"write-{n}", write, ctx.run_id, n)
    return {"total": total}


@workflow("bench-3-atomic-steps")
def three_atomic_steps(ctx, data):
    """The same writes as atomic steps: each INSERT commits together with its step record."""
    total = 0
    for n in range(3):
        total += ctx.step(f"write-{n}", write, ctx.run_id, n, atomic=True)
    return {"total": total}


def three_writes(key: str) -> int:
    """The baseline: a bare django-q2 task making the same three writes (no journal)."""
    return sum(write(key, n) for n in range(3))


@workflow("bench-approval", description="Waits for one approval, then finishes.")
def bench_approval(ctx, data):
    decision = request_approval(
        ctx,
        "approve",
        title=f"Benchmark request {data.get('key', '')}",
        payload={"key": data.get("key")},
        stages=[Stage("review", users=[data["reviewer"]], groups=data.get("groups", []))],
    )
    return {"status": decision.status}
