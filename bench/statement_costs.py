"""Where a run's time goes: every SQL statement of N 3-step runs, timed in one process.

    .venv/bin/python bench/statement_costs.py [--runs 2000] [--workflow bench-3-steps]

No worker cluster and no contention: this process starts N runs (their advance tasks are not
sent), then advances them one after another with ``workflows.engine.advance``, as a worker
would, timing each statement from sending it to its result (round trip, execution and commit).
It prints, per statement shape, the count and milliseconds per call and per run, and per run
the wall time of starting and of advancing, with the meter's figures for each (this process's
CPU, transactions, the WAL the server wrote, updates made in place). Realtime
events are published to Redis as in a worker. A fresh database ``hitl_bench_stmt`` on the
benchmark PostgreSQL; Redis db 12 flushed.
"""

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c

DB = "hitl_bench_stmt"
WARMUP = 30


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--workflow", default="bench-3-steps")
    args = parser.parse_args()

    c.emit("machine", c.machine())
    env = c.bench_env(c.fresh_database(DB))
    c.flush_redis()
    c.manage(env, "migrate", "--noinput")
    c.setup_django(env)

    from django.db import connection

    from bench.flows import TABLE_DDL
    from realtime.delivery import publisher
    from workflows import queue, start
    from workflows.engine import advance

    with connection.cursor() as cursor:
        cursor.execute(TABLE_DDL)
    # This process advances the runs itself: no advance task goes to the broker.
    queue._send = lambda run_id: None

    def advance_all(runs: list) -> None:
        for run in runs:
            outcome = advance(run.pk)
            if outcome != "completed":
                raise SystemExit(f"run {run.pk} ended {outcome!r}")

    advance_all([start(args.workflow, {}) for _ in range(WARMUP)])

    # This process is the worker: the meter's "driver" CPU is its CPU, all threads included.
    meter = c.Meter(DB, [])
    # The thread sending this process's live events to Redis, measured on its own.
    publisher().flush()
    publisher_thread = publisher()._thread.native_id
    publishing0 = c.thread_cpu(publisher_thread)
    meter.start()
    wall0 = time.perf_counter()
    runs = [start(args.workflow, {}) for _ in range(args.runs)]
    wall1_start = time.perf_counter()
    starting = meter.stop(args.runs, "run")

    timings: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])

    def timed(execute, sql, params, many, context):
        began = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            shape = timings[" ".join(sql.split())[:100]]
            shape[0] += 1
            shape[1] += time.perf_counter() - began

    publisher().flush()
    publishing1 = c.thread_cpu(publisher_thread)
    meter.start()
    wall1 = time.perf_counter()  # after the start phase's meter, which waits 10.5 s
    with connection.execute_wrapper(timed):
        advance_all(runs)
    wall2 = time.perf_counter()
    publisher().flush()
    publishing2 = c.thread_cpu(publisher_thread)
    advancing = meter.stop(args.runs, "run")

    n = args.runs
    statements = [
        {
            "statement": sql,
            "calls_per_run": round(count / n, 2),
            "ms_per_call": round(1000 * seconds / count, 3),
            "ms_per_run": round(1000 * seconds / n, 3),
        }
        for sql, (count, seconds) in sorted(timings.items(), key=lambda item: -item[1][1])
    ]
    c.emit("statements while advancing", {"statements": statements})
    c.emit(
        "summary",
        {
            "runs": n,
            "workflow": args.workflow,
            "start": {
                "wall_ms_per_run": round(1000 * (wall1_start - wall0) / n, 2),
                **starting,
                "publisher_thread_cpu_ms_per_run": round(1000 * (publishing1 - publishing0) / n, 3),
            },
            "advance": {
                "wall_ms_per_run": round(1000 * (wall2 - wall1) / n, 2),
                "publisher_thread_cpu_ms_per_run": round(1000 * (publishing2 - publishing1) / n, 3),
                "in_statements_ms_per_run": round(
                    1000 * sum(s for _, s in timings.values()) / n, 2
                ),
                **advancing,
            },
            "uptime_after": c.machine()["uptime"],
        },
    )


if __name__ == "__main__":
    main()
