"""Round trip, Redis mode: how long from a decision sent through the REST API to the run
completed, against DBOS ``send`` / ``recv`` on the same PostgreSQL.

    .venv/bin/python bench/round_trip.py [--runs 500] [--rate 20] [--only engine,dbos] [--web 1]

engine: a fresh database ``hitl_bench_rt``, Redis db 12 (flushed), ``--web`` real ``daphne``
processes (the driver's sender threads take them in turn, as a load balancer would) and one
``manage.py qcluster`` (2 workers). N runs of ``bench-approval`` (``request_approval`` with one
stage assigned to a reviewer) are started and left waiting; then the driver sends one
``POST /api/v1/approvals/<id>/decide/ {"action": "approve"}`` per run with the reviewer's token,
paced at ``--rate`` per second so the figures are latency, not queueing. Measured per run:
decision sent (before the request) -> the run's ``finished_at`` (written in the worker's
completing transaction); the API's own response time is reported too.

dbos: two ``bench/dbos_app.py`` worker processes on a fresh system database; N workflows
blocked in ``DBOS.recv("decision")``; ``DBOSClient.send`` from the driver at the same pace;
measured: send -> the workflow's ``updated_at`` when it became SUCCESS.
"""

import argparse
import http.client
import itertools
import json
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c

DB = "hitl_bench_rt"
DBOS_DB = "hitl_bench_rt_dbos"
REVIEWER = "bench-reviewer"


def paced(count: int, rate: float):
    """Yield 0..count-1, each at its slot of a fixed schedule (rate per second)."""
    start = time.perf_counter()
    for i in range(count):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        yield i


def engine_phase(env: dict, runs: int, rate: float, web: int = 1) -> dict:
    from django.contrib.auth.models import User
    from rest_framework.authtoken.models import Token

    from approvals.models import Action, ApprovalRequest, DecisionRecord
    from workflows import start
    from workflows.models import RunStatus, WorkflowRun

    reviewer = User.objects.create_user(REVIEWER)
    token = Token.objects.create(user=reviewer).key
    requester = User.objects.create_user("bench-requester")
    procs = c.Processes(env, "rt-engine")
    try:
        procs.qcluster()
        ports = [procs.daphne()[1] for _ in range(web)]
        next_port = itertools.count()
        ids = [
            str(start("bench-approval", {"key": i, "reviewer": REVIEWER}, created_by=requester).id)
            for i in range(runs)
        ]
        c.wait_until(
            lambda: WorkflowRun.objects.filter(status=RunStatus.WAITING).count() == runs,
            120 + runs,
            f"{runs} runs to wait for approval",
        )
        approvals = {str(r): a for r, a in ApprovalRequest.objects.values_list("run_id", "pk")}
        headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}
        body = json.dumps({"action": "approve"})
        sent: dict[str, float] = {}
        api: list[float] = []
        local = threading.local()

        def decide(run_id: str) -> None:
            # One keep-alive connection per sender thread; several threads so that a slow
            # response never delays the next decision's slot.
            if getattr(local, "conn", None) is None:
                port = ports[next(next_port) % len(ports)]
                local.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            sent[run_id] = time.time()
            local.conn.request(
                "POST", f"/api/v1/approvals/{approvals[run_id]}/decide/", body, headers
            )
            response = local.conn.getresponse()
            response.read()
            api.append(time.time() - sent[run_id])
            if response.status != 200:
                raise RuntimeError(f"decide answered {response.status}")

        load = c.loadavg()
        with ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(decide, ids[i]) for i in paced(runs, rate)]
            for future in futures:
                future.result()
        c.wait_until(
            lambda: WorkflowRun.objects.filter(status=RunStatus.COMPLETED).count() == runs,
            120,
            "runs to complete",
        )
        finished = dict(WorkflowRun.objects.values_list("pk", "finished_at"))
        latencies = [finished[uuid.UUID(r)].timestamp() - t for r, t in sent.items()]
        # Where the time goes: the decision service stamps its record with the moment it holds
        # the request's lock (the request parsed, authenticated, found and locked); the rest
        # is the decision's writes, its commit, the queue and the worker's advance.
        decided = dict(
            DecisionRecord.objects.filter(action=Action.APPROVE).values_list(
                "request__run_id", "created_at"
            )
        )
        to_service = [decided[uuid.UUID(r)].timestamp() - t for r, t in sent.items()]
        service_to_done = [
            (finished[run] - decided[run]).total_seconds() for run in map(uuid.UUID, sent)
        ]
    finally:
        procs.stop()
    return {
        "decision_to_completed": c.percentiles(latencies),
        "sent_to_decision_service": c.percentiles(to_service),
        "decision_service_to_completed": c.percentiles(service_to_done),
        "api_decide_response": c.percentiles(api),
        "loadavg_during": load,
    }


def dbos_phase(env: dict, runs: int, rate: float) -> dict:
    import psycopg
    from dbos import DBOSClient

    url = c.fresh_database(DBOS_DB)
    procs = c.Processes(env, "rt-dbos")
    client = None
    try:
        for n in range(2):
            procs.spawn(
                f"dbos-{n}",
                [sys.executable, str(c.ROOT / "bench" / "dbos_app.py"), url, f"rt-worker-{n}"],
            )
        c.wait_until(
            lambda: all("ready" in (procs.logdir / f"dbos-{n}.log").read_text() for n in range(2)),
            120,
            "DBOS workers to launch",
        )
        client = DBOSClient(system_database_url=url)
        options = {
            "queue_name": "bench-wait",
            "workflow_name": "bench-wait",
            "app_version": "bench",
            "application_name": "hitl-bench",
        }
        ids = [f"wait-{i}" for i in range(runs)]
        for wid in ids:
            client.enqueue({**options, "workflow_id": wid}, wid)

        def blocked() -> int:
            # A workflow blocked in recv has recorded no step yet and is PENDING (running).
            with psycopg.connect(url) as conn:
                return conn.execute(
                    "SELECT count(*) FROM dbos.workflow_status WHERE status = 'PENDING' "
                    "AND workflow_uuid LIKE 'wait-%%'"
                ).fetchone()[0]

        c.wait_until(lambda: blocked() == runs, 120 + runs, f"{runs} DBOS workflows to start")
        time.sleep(2)  # every one of them reaches recv
        sent: dict[str, float] = {}
        load = c.loadavg()
        for i in paced(runs, rate):
            sent[ids[i]] = time.time()
            client.send(ids[i], "approve", topic="decision")

        def succeeded() -> int:
            with psycopg.connect(url) as conn:
                return conn.execute(
                    "SELECT count(*) FROM dbos.workflow_status WHERE status = 'SUCCESS' "
                    "AND workflow_uuid LIKE 'wait-%%'"
                ).fetchone()[0]

        c.wait_until(lambda: succeeded() == runs, 120, "DBOS workflows to complete")
        with psycopg.connect(url) as conn:
            done = dict(
                conn.execute(
                    "SELECT workflow_uuid, updated_at FROM dbos.workflow_status "
                    "WHERE workflow_uuid LIKE 'wait-%%'"
                ).fetchall()
            )
        latencies = [done[w] / 1000 - t for w, t in sent.items()]
    finally:
        if client is not None:
            client.destroy()
        procs.stop()
    return {"send_to_completed": c.percentiles(latencies), "loadavg_during": load}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--rate", type=float, default=20.0, help="decisions per second")
    parser.add_argument("--only", default="engine,dbos")
    parser.add_argument("--web", type=int, default=1, help="daphne processes for the API")
    args = parser.parse_args()
    phases = args.only.split(",")

    c.emit("machine", c.machine())
    url = c.fresh_database(DB)
    env = c.bench_env(url, workers=2)
    c.flush_redis()
    c.manage(env, "migrate", "--noinput")
    c.setup_django(env)
    results: dict[str, dict] = {}
    note = f"decisions paced at {args.rate:g}/s: latency, not queueing"
    if "engine" in phases:
        results["engine"] = engine_phase(env, args.runs, args.rate, args.web)
        c.emit("engine (Redis mode, REST API decisions)", {"note": note, **results["engine"]})
    if "dbos" in phases:
        results["dbos"] = dbos_phase(env, args.runs, args.rate)
        c.emit("dbos (send/recv)", {"note": note, **results["dbos"]})
    summary: dict = {"runs": args.runs, "rate_per_s": args.rate, "web": args.web, "note": note}
    if "engine" in results:
        p99 = results["engine"]["decision_to_completed"]["p99_ms"]
        summary["engine_p50_p95_p99_ms"] = [
            results["engine"]["decision_to_completed"][k] for k in ("p50_ms", "p95_ms", "p99_ms")
        ]
        summary["target_p99_under_100ms"] = c.verdict(p99 < 100)
    if "dbos" in results:
        summary["dbos_p50_p95_p99_ms"] = [
            results["dbos"]["send_to_completed"][k] for k in ("p50_ms", "p95_ms", "p99_ms")
        ]
    if len(results) == 2:
        e, d = results["engine"]["decision_to_completed"], results["dbos"]["send_to_completed"]
        summary["engine_vs_dbos_p50"] = c.ratio(e["p50_ms"], d["p50_ms"])
        summary["engine_vs_dbos_p99"] = c.ratio(e["p99_ms"], d["p99_ms"])
    summary["uptime_after"] = c.machine()["uptime"]
    c.emit("summary", summary)


if __name__ == "__main__":
    main()
