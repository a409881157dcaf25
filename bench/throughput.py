"""Throughput: N runs of a 3-step workflow with 2 worker processes, against bare django-q2 tasks
making the same three writes and against DBOS Transact running the same workflow.

    .venv/bin/python bench/throughput.py [--runs 2000]
                                         [--only q2,q2_steps,engine,engine_batched,
                                                 engine_atomic,dbos]
                                         [--dbos-worker-concurrency 4] [--dbos-poll 0.05]
                                         [--rounds 3]

Everything runs on the real PostgreSQL (a fresh database ``hitl_bench_tp``, and
``hitl_bench_dbos`` for DBOS's system database, both dropped and recreated) and Redis (db 12,
flushed). Each system gets 2 worker processes, already booted and warmed up (a few runs go
through first); the clock starts at the first start/enqueue from this driver process and stops
at the last completion as recorded in the database (the engine's ``finished_at``, the
baseline task's last write, DBOS's ``workflow_status.updated_at``).

* engine: one ``manage.py qcluster`` with ``HITL_WORKERS=2``; ``workflows.start`` per run.
* engine_batched: the same with ``ctx.step(..., batched=True)`` (the three steps are written
          together with the run's end: two journal statements per run instead of five).
* engine_atomic: the same with ``ctx.step(..., atomic=True)`` (each INSERT commits with its
          step record: one commit per step instead of two).
* q2:     the same cluster settings and broker; ``async_task(bench.flows.three_writes)``: one
          task making the three writes (no record of which of them happened).
* q2_steps: one bare task per step, each enqueueing the next
          (``bench.flows.write_then_next``): what a django-q2 user writes to get a retry per
          step, the guarantee the engine's steps give.
* dbos:   two ``bench/dbos_app.py`` processes (``executor_id`` each), ``DBOSClient.enqueue``
          onto a queue with a per-worker concurrency limit.
"""

import argparse
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c
from dbos_app import TABLE_DDL

STEPS = 3
WARMUP = 20
DB = "hitl_bench_tp"


def engine_phase(
    env: dict, runs: int, profile: str | None = None, workflow: str = "bench-3-steps"
) -> dict:
    from django.db.models import Max

    from workflows import start
    from workflows.models import RunStatus, WorkflowRun

    def done(since) -> int:
        return WorkflowRun.objects.filter(created_at__gte=since, status=RunStatus.COMPLETED).count()

    procs = c.Processes(env, "engine")
    try:
        meter = c.Meter(DB, [procs.qcluster().pid])
        since = datetime.now(UTC)
        for _ in range(WARMUP):
            start(workflow, {})
        c.wait_until(lambda: done(since) == WARMUP, 120, "engine warm-up")
        failed = WorkflowRun.objects.exclude(status=RunStatus.COMPLETED).count()
        spies = _profile(procs, profile, "engine") if profile else []
        meter.start()
        t0 = time.time()
        since = datetime.fromtimestamp(t0, UTC)
        for _ in range(runs):
            start(workflow, {})
        enqueued = time.time() - t0
        c.wait_until(lambda: done(since) == runs, 60 + runs, "engine runs", 0.25)
        last = WorkflowRun.objects.filter(created_at__gte=since).aggregate(m=Max("finished_at"))
        elapsed = last["m"].timestamp() - t0
        failed += WorkflowRun.objects.exclude(status=RunStatus.COMPLETED).count()
        costs = meter.stop(runs, "run")
        for spy in spies:
            spy.wait(60)
    finally:
        procs.stop()
    return {**_figures(runs, elapsed, enqueued, failed=failed), **costs}


def _profile(procs: c.Processes, outdir: str, name: str, seconds: int = 15) -> list:
    """py-spy record (collapsed stacks, idle frames left out) of each cluster worker."""
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    return [
        procs.spawn(
            f"py-spy-{pid}",
            [
                str(c.BIN / "py-spy"),
                "record",
                "--pid",
                str(pid),
                "--duration",
                str(seconds),
                "--format",
                "raw",
                "--rate",
                "200",
                "-o",
                str(out / f"{name}-worker-{pid}.txt"),
            ],
        )
        for pid in c.cluster_worker_pids()
    ]


def q2_phase(env: dict, runs: int, per_step: bool = False) -> dict:
    from django.db import connection
    from django_q.brokers import get_broker
    from django_q.tasks import async_task

    # One broker connection for the whole burst (async_task would open one per call), so the
    # figure is the workers' capacity rather than this driver's.
    broker = get_broker()

    # The two q2 phases write to the same table: each counts and times its own keys, which
    # a later round uses again, so each phase starts from an empty table.
    prefix = "q2s" if per_step else "q2"
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE bench_writes")

    def done(keys: str) -> int:
        """Runs whose last write is in: keys ``<prefix>w-`` (warm-up) or ``<prefix>-``."""
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM bench_writes WHERE run_key LIKE %s AND n = 2", [keys + "%"]
            )
            return cursor.fetchone()[0]

    def task(key: str) -> tuple:
        if per_step:
            return ("bench.flows.write_then_next", key, 0)
        return ("bench.flows.three_writes", key)

    procs = c.Processes(env, "q2")
    try:
        meter = c.Meter(DB, [procs.qcluster().pid])
        for i in range(WARMUP):
            async_task(*task(f"{prefix}w-{i}"))
        c.wait_until(lambda: done(f"{prefix}w-") == WARMUP, 120, "django-q2 warm-up")
        meter.start()
        t0 = time.time()
        for i in range(runs):
            async_task(*task(f"{prefix}-{i}"), broker=broker)
        enqueued = time.time() - t0
        c.wait_until(lambda: done(f"{prefix}-") == runs, 60 + runs, "django-q2 tasks", 0.25)
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT max(at) FROM bench_writes WHERE run_key LIKE %s", [prefix + "-%"]
            )
            elapsed = cursor.fetchone()[0].timestamp() - t0
        costs = meter.stop(runs, "run")
    finally:
        procs.stop()
    return {**_figures(runs, elapsed, enqueued), **costs}


def dbos_phase(env: dict, runs: int, worker_concurrency: int, poll: float) -> dict:
    import psycopg
    from dbos import DBOSClient

    url = c.fresh_database("hitl_bench_dbos")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(TABLE_DDL)
    procs = c.Processes(env, "dbos")
    client = None
    try:
        workers = [
            procs.spawn(
                f"dbos-{n}",
                [
                    sys.executable,
                    str(c.ROOT / "bench" / "dbos_app.py"),
                    url,
                    f"bench-worker-{n}",
                    str(worker_concurrency),
                    str(poll),
                ],
            )
            for n in range(2)
        ]
        # The first one creates the system database's tables; wait for both to be ready.
        c.wait_until(
            lambda: all("ready" in (procs.logdir / f"dbos-{n}.log").read_text() for n in range(2)),
            120,
            "DBOS workers to launch",
        )
        for w in workers:
            if w.poll() is not None:
                raise RuntimeError(f"DBOS worker exited:\n{procs.logs()}")
        client = DBOSClient(system_database_url=url)
        options = {
            "queue_name": "bench-3-steps",
            "workflow_name": "bench-3-steps",
            "app_version": "bench",
            "application_name": "hitl-bench",
        }

        def done(prefix: str) -> int:
            with psycopg.connect(url) as conn:
                return conn.execute(
                    "SELECT count(*) FROM dbos.workflow_status WHERE status = 'SUCCESS' "
                    "AND workflow_uuid LIKE %s",
                    [prefix + "%"],
                ).fetchone()[0]

        for i in range(WARMUP):
            client.enqueue({**options, "workflow_id": f"warm-{i}"}, f"warm-{i}")
        c.wait_until(lambda: done("warm-") == WARMUP, 120, "DBOS warm-up")
        meter = c.Meter("hitl_bench_dbos", [w.pid for w in workers])
        meter.start()
        t0 = time.time()
        for i in range(runs):
            client.enqueue({**options, "workflow_id": f"run-{i}"}, f"run-{i}")
        enqueued = time.time() - t0
        c.wait_until(lambda: done("run-") == runs, 60 + runs, "DBOS workflows", 0.25)
        with psycopg.connect(url) as conn:
            last_ms, executors = conn.execute(
                "SELECT max(updated_at), count(DISTINCT executor_id) FROM dbos.workflow_status "
                "WHERE workflow_uuid LIKE 'run-%%'"
            ).fetchone()
        elapsed = last_ms / 1000 - t0
        costs = meter.stop(runs, "run")
    finally:
        if client is not None:
            client.destroy()
        procs.stop()
    result = {**_figures(runs, elapsed, enqueued), **costs}
    result.update(
        executors_used=executors, worker_concurrency=worker_concurrency, queue_poll_s=poll
    )
    return result


def _figures(runs: int, elapsed: float, enqueued: float, failed: int = 0) -> dict:
    return {
        "runs": runs,
        "seconds": round(elapsed, 2),
        "runs_per_s": round(runs / elapsed, 1),
        "steps_per_s": round(runs * STEPS / elapsed, 1),
        "driver_enqueue_seconds": round(enqueued, 2),
        **({"not_completed": failed} if failed else {}),
    }


def run_phase(phase: str, env: dict, args: argparse.Namespace) -> dict:
    load_before = c.loadavg()
    if phase == "engine":
        figures = engine_phase(env, args.runs, args.profile)
    elif phase == "engine_batched":
        figures = engine_phase(env, args.runs, args.profile, "bench-3-batched-steps")
    elif phase == "engine_atomic":
        figures = engine_phase(env, args.runs, args.profile, "bench-3-atomic-steps")
    elif phase == "q2":
        figures = q2_phase(env, args.runs)
    elif phase == "q2_steps":
        figures = q2_phase(env, args.runs, per_step=True)
    elif phase == "dbos":
        figures = dbos_phase(env, args.runs, args.dbos_worker_concurrency, args.dbos_poll)
    else:
        raise SystemExit(f"unknown phase {phase!r}")
    figures["loadavg_before"] = load_before
    return figures


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--only", default="q2,q2_steps,engine,engine_batched,engine_atomic,dbos")
    parser.add_argument("--dbos-worker-concurrency", type=int, default=4)
    parser.add_argument("--dbos-poll", type=float, default=0.05)
    parser.add_argument("--profile", help="directory: py-spy the engine's workers into it")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run every phase this many times, alternating; report medians and ranges",
    )
    args = parser.parse_args()
    phases = args.only.split(",")

    c.emit("machine", c.machine())
    url = c.fresh_database(DB)
    env = c.bench_env(url, workers=2)
    c.flush_redis()
    c.manage(env, "migrate", "--noinput")
    c.setup_django(env)
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(TABLE_DDL)

    # rounds[i][phase]: the figures of round i. Phases alternate within a round, so each
    # ratio below pairs figures taken a minute apart; on a shared host the spread between
    # rounds is larger than most changes worth measuring.
    rounds: list[dict[str, dict]] = []
    for number in range(1, args.rounds + 1):
        results: dict[str, dict] = {}
        for phase in phases:
            results[phase] = run_phase(phase, env, args)
            c.emit(phase if args.rounds == 1 else f"{phase} (round {number})", results[phase])
            c.flush_redis()
        rounds.append(results)

    summary: dict = {"runs": args.runs, "steps_per_run": STEPS, "workers": 2}
    if args.rounds > 1:
        summary["rounds"] = args.rounds
    for name in phases:
        figures = [r[name]["steps_per_s"] for r in rounds]
        summary[f"{name}_steps_per_s"] = _median(figures)
        if len(figures) > 1:
            summary[f"{name}_steps_per_s_range"] = [min(figures), max(figures)]
    # Each engine variant against each baseline: the single bare task (three writes, no record
    # of which happened), the bare task per step (a retry per step, as the engine's steps give)
    # and DBOS. With several rounds: the median of the ratios of each round, and their range.
    for variant in ("engine", "engine_batched", "engine_atomic"):
        if variant not in phases:
            continue
        for baseline in ("dbos", "q2", "q2_steps"):
            if baseline not in phases:
                continue
            ratios = [r[variant]["steps_per_s"] / r[baseline]["steps_per_s"] for r in rounds]
            ratio = _median(ratios)
            summary[f"{variant}_vs_{baseline}"] = ratio
            if len(ratios) > 1:
                summary[f"{variant}_vs_{baseline}_range"] = [
                    round(min(ratios), 2),
                    round(max(ratios), 2),
                ]
            # The same comparison by the machine's busy CPU per run (baseline's ÷ variant's):
            # what the ratio of throughputs tends to on a CPU-bound host, without the time
            # other guests of a shared host took.
            by_cpu = [
                r[baseline]["host_cpu_ms_per_run"] / r[variant]["host_cpu_ms_per_run"]
                for r in rounds
            ]
            summary[f"{variant}_vs_{baseline}_by_host_cpu"] = _median(by_cpu)
            if baseline == "dbos":
                summary[f"target_{variant}_ge_dbos"] = c.verdict(ratio >= 1)
            else:
                summary[f"target_{variant}_ge_half_{baseline}"] = c.verdict(ratio >= 0.5)
    summary["uptime_after"] = c.machine()["uptime"]
    c.emit("summary", summary)


if __name__ == "__main__":
    main()
