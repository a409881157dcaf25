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


def _three_writes_as_steps(**options):
    """The workflow body: three steps, each one INSERT, with ``options`` for ctx.step."""

    def flow(ctx, data):
        return {
            "total": sum(ctx.step(f"write-{n}", write, ctx.run_id, n, **options) for n in range(3))
        }

    return flow


workflow("bench-3-steps")(_three_writes_as_steps())
# The same writes as batched steps: all three recorded with the run's end.
workflow("bench-3-batched-steps")(_three_writes_as_steps(batched=True))
# The same writes as atomic steps: each INSERT commits together with its step record.
workflow("bench-3-atomic-steps")(_three_writes_as_steps(atomic=True))


def three_writes(key: str) -> int:
    """The baseline: a bare django-q2 task making the same three writes (no journal)."""
    return sum(write(key, n) for n in range(3))


_broker = None


def write_then_next(key: str, n: int, last: int = 2) -> int:
    """The per-step baseline: one bare django-q2 task per write, each enqueueing the next.

    This is how a django-q2 user gets a retry per step without an engine. It is written as
    favourably to django-q2 as possible: the next task is enqueued from inside the task through
    one broker connection per process (django-q2's own ``async_chain`` needs each result saved
    to the database first, one more commit per task), and no result is saved.
    """
    global _broker
    from django_q.brokers import get_broker
    from django_q.tasks import async_task

    write(key, n)
    if n < last:
        _broker = _broker or get_broker()
        async_task("bench.flows.write_then_next", key, n + 1, last, broker=_broker)
    return n


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
