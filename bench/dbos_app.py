"""The DBOS Transact peer for the benchmarks: the same workflows, as a DBOS application.

    python bench/dbos_app.py <system-database-url> <executor-id> [worker_concurrency] [poll_s]

runs one DBOS worker process (its own ``executor_id``) until SIGTERM. The driver scripts start
two of them and enqueue with ``DBOSClient`` on the same PostgreSQL server as the engine.

* ``bench-3-steps``: three ``@DBOS.step`` calls, each one INSERT into ``bench_writes`` (the
  same table and statement as ``bench/flows.py``), on queue ``bench-3-steps``.
* ``bench-wait``: blocks in ``DBOS.recv("decision")`` and returns the message, on queue
  ``bench-wait`` (no per-worker limit: every waiting workflow holds a thread in DBOS).
"""

import os
import signal
import sys
import threading

import psycopg
from dbos import DBOS, DBOSConfig

THROUGHPUT_QUEUE = "bench-3-steps"
WAIT_QUEUE = "bench-wait"
TABLE_DDL = (
    "CREATE TABLE IF NOT EXISTS bench_writes "
    "(run_key VARCHAR(100), n INTEGER, at TIMESTAMPTZ DEFAULT clock_timestamp())"
)

_local = threading.local()
_database_url = ""


def _connection() -> psycopg.Connection:
    conn = getattr(_local, "conn", None)
    if conn is None or conn.closed:
        conn = _local.conn = psycopg.connect(_database_url, autocommit=True)
    return conn


@DBOS.step()
def write(key: str, n: int) -> int:
    _connection().execute("INSERT INTO bench_writes (run_key, n) VALUES (%s, %s)", [key, n])
    return n


@DBOS.workflow(name="bench-3-steps")
def three_steps(key: str) -> dict:
    total = 0
    for n in range(3):
        total += write(key, n)
    return {"total": total}


@DBOS.workflow(name="bench-wait")
def wait_decision(key: str):
    return DBOS.recv("decision", timeout_seconds=900)


def config(database_url: str, executor_id: str) -> DBOSConfig:
    return {
        "name": "hitl-bench",
        "system_database_url": database_url,
        "executor_id": executor_id,
        "application_version": "bench",
        "log_level": "WARNING",
    }


def main() -> None:
    global _database_url
    _database_url = sys.argv[1]
    executor_id = sys.argv[2]
    worker_concurrency = int(sys.argv[3]) if len(sys.argv) > 3 else 4
    poll = float(sys.argv[4]) if len(sys.argv) > 4 else 0.05
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    DBOS(config=config(_database_url, executor_id))
    DBOS.launch()
    DBOS.register_queue(
        THROUGHPUT_QUEUE,
        worker_concurrency=worker_concurrency,
        polling_interval_sec=poll,
        on_conflict="always_update",
    )
    DBOS.register_queue(WAIT_QUEUE, polling_interval_sec=poll, on_conflict="always_update")
    print(f"ready {os.getpid()}", flush=True)
    stop.wait()
    DBOS.destroy(workflow_completion_timeout_sec=0)


if __name__ == "__main__":
    main()
