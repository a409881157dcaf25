"""Scale: N waiting runs with pending approvals (default 100,000): API list latency and query
counts, and the memory of a worker process with all of them waiting.

    .venv/bin/python bench/scale_api.py [--runs 100000] [--requests 30]

A fresh database ``hitl_bench_scale``, Redis db 12 (flushed), one ``manage.py qcluster`` (2
workers) and one ``daphne``. One real run of ``bench-approval`` is started and left waiting by
the engine; its rows (run, step, wait point, run events, approval request, stage with its
assignees, audit record) are the template that the other N-1 are bulk-created from with the ORM
(each with its own ids; stage assigned to ``reviewer-<i % 10>`` and the group ``approvers``).

Measured over real HTTP (daphne, token auth, keep-alive), ``--requests`` times after 3 warm-up
requests, p50 / p95: ``GET /api/v1/approvals/?assigned_to_me=true`` for ``alice`` (in
``approvers``: all N are hers) and ``reviewer-1`` (named on N/10), and
``GET /api/v1/runs/?status=waiting`` for a superuser and for ``reviewer-1``. Query counts come
from the same requests made in this process with Django's test client.

Worker memory: RSS of each django-q2 worker process with 1 run waiting, again with all N
waiting after the workers' timer sweeps have run for a while, and after deciding some of the
bulk-created approvals through the API (which the workers then finish): a waiting run costs the
worker nothing, it is only rows.
"""

import argparse
import http.client
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c

DB = "hitl_bench_scale"
BATCH = 2000
TARGET_MS = 300


def copy(obj, **changes):
    model = type(obj)
    fields = {f.attname: getattr(obj, f.attname) for f in model._meta.concrete_fields}
    fields.update(changes)
    return model(**fields)


def bulk_clone(template_run_id, count: int, reviewers: list, group) -> float:
    """Clone the template run's rows ``count`` times; returns seconds taken."""
    from django.db import connection, transaction

    from approvals import access
    from approvals.models import ApprovalRequest, ApprovalStage, DecisionRecord
    from workflows.models import RunEvent, Step, WaitPoint, WorkflowRun

    run = WorkflowRun.objects.get(pk=template_run_id)
    step = Step.objects.get(run=run)
    wait = WaitPoint.objects.get(run=run)
    events = list(RunEvent.objects.filter(run=run))
    request = ApprovalRequest.objects.get(run=run)
    stage = ApprovalStage.objects.get(request=request)
    decisions = list(DecisionRecord.objects.filter(request=request))
    users_through = ApprovalStage.users.through
    groups_through = ApprovalStage.groups.through

    started = time.time()
    for first in range(0, count, BATCH):
        n = min(BATCH, count - first)
        runs, steps, waits, evs, requests, stages = [], [], [], [], [], []
        for i in range(first, first + n):
            run_id, wait_id, request_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
            runs.append(
                copy(run, id=run_id, input={**run.input, "key": f"s{i}", "reviewer": f"r{i}"})
            )
            steps.append(copy(step, id=None, run_id=run_id))
            waits.append(copy(wait, id=wait_id, run_id=run_id))
            evs.extend(copy(e, id=None, run_id=run_id) for e in events)
            requests.append(
                copy(
                    request,
                    id=request_id,
                    run_id=run_id,
                    wait_id=wait_id,
                    current_stage_id=None,
                    title=f"Benchmark request s{i}",
                )
            )
            stages.append(copy(stage, id=None, request_id=request_id))
        with transaction.atomic():
            WorkflowRun.objects.bulk_create(runs)
            Step.objects.bulk_create(steps)
            WaitPoint.objects.bulk_create(waits)
            RunEvent.objects.bulk_create(evs)
            ApprovalRequest.objects.bulk_create(requests)
            ApprovalStage.objects.bulk_create(stages)
            users_through.objects.bulk_create(
                users_through(approvalstage_id=s.pk, user_id=reviewers[(first + k) % 10].pk)
                for k, s in enumerate(stages)
            )
            groups_through.objects.bulk_create(
                groups_through(approvalstage_id=s.pk, group_id=group.pk) for s in stages
            )
            DecisionRecord.objects.bulk_create(
                copy(d, id=None, request_id=s.request_id, stage_id=s.pk if d.stage_id else None)
                for s in stages
                for d in decisions
            )
            access.rebuild(r.pk for r in requests)  # who may see them, as the services record it
        print(f"  {first + n} / {count} cloned", file=sys.stderr, flush=True)
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE approvals_approvalrequest r SET current_stage_id = s.id "
            "FROM approvals_approvalstage s "
            "WHERE s.request_id = r.id AND r.current_stage_id IS NULL"
        )
        cursor.execute("VACUUM ANALYZE")
    return time.time() - started


def http_latency(port: int, path: str, token: str, requests: int) -> dict:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Authorization": f"Token {token}"}
    times = []
    size = 0
    for i in range(3 + requests):
        t = time.perf_counter()
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"GET {path} answered {response.status}: {body[:300]!r}")
        if i >= 3:
            times.append(time.perf_counter() - t)
            size = len(body)
    conn.close()
    result = c.percentiles(times)
    result.pop("p99_ms")
    return {**result, "bytes": size}


def query_count(path: str, token: str) -> dict:
    import json

    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client(HTTP_HOST="127.0.0.1")
    client.get(path, HTTP_AUTHORIZATION=f"Token {token}")  # warm
    with CaptureQueriesContext(connection) as ctx:
        t = time.perf_counter()
        response = client.get(path, HTTP_AUTHORIZATION=f"Token {token}")
        elapsed = time.perf_counter() - t
    data = json.loads(response.content)
    slowest = max(ctx.captured_queries, key=lambda q: float(q["time"]))
    return {
        "queries": len(ctx.captured_queries),
        "in_process_ms": round(elapsed * 1000, 1),
        "items_on_page": len(data.get("results", [])),
        "slowest_query_ms": round(float(slowest["time"]) * 1000, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--settle", type=float, default=10, help="seconds of sweeps at scale")
    parser.add_argument("--decide", type=int, default=50, help="bulk approvals decided at the end")
    args = parser.parse_args()

    c.emit("machine", c.machine())
    url = c.fresh_database(DB)
    env = c.bench_env(url, workers=2)
    c.flush_redis()
    c.manage(env, "migrate", "--noinput")
    c.setup_django(env)

    from django.contrib.auth.models import Group, User
    from rest_framework.authtoken.models import Token

    from approvals.models import ApprovalRequest, ApprovalStatus
    from workflows import start
    from workflows.models import RunStatus, WorkflowRun

    group = Group.objects.create(name="approvers")
    reviewers = [User.objects.create_user(f"reviewer-{i}") for i in range(10)]
    alice = User.objects.create_user("alice")
    alice.groups.add(group)
    admin = User.objects.create_superuser("bench-admin")
    requester = User.objects.create_user("bench-requester")
    tokens = {u.username: Token.objects.create(user=u).key for u in [alice, admin, reviewers[1]]}

    procs = c.Processes(env, "scale")
    results: dict = {"runs": args.runs}
    try:
        procs.qcluster()
        template = start(
            "bench-approval",
            {"key": "template", "reviewer": "reviewer-0", "groups": ["approvers"]},
            created_by=requester,
        )
        c.wait_until(
            lambda: WorkflowRun.objects.filter(pk=template.pk, status=RunStatus.WAITING).exists(),
            60,
            "the template run to wait",
        )
        workers = c.cluster_worker_pids()
        time.sleep(args.settle)
        rss = {"1_waiting": [c.rss_mib(p) for p in workers]}

        seconds = bulk_clone(template.pk, args.runs - 1, reviewers, group)
        waiting = WorkflowRun.objects.filter(status=RunStatus.WAITING).count()
        pending = ApprovalRequest.objects.filter(status=ApprovalStatus.PENDING).count()
        results["bulk_create_seconds"] = round(seconds, 1)
        results["waiting_runs"] = waiting
        results["pending_approvals"] = pending
        time.sleep(args.settle)  # the workers' timer sweeps run over the full tables
        rss[f"{waiting}_waiting"] = [c.rss_mib(p) for p in workers]
        if workers != c.cluster_worker_pids():
            raise RuntimeError("the cluster's workers changed while measuring")

        _, port = procs.daphne()
        load = c.loadavg()
        lists = {
            "approvals assigned_to_me, alice (group: all N)": (
                "/api/v1/approvals/?assigned_to_me=true",
                "alice",
            ),
            "approvals assigned_to_me, reviewer-1 (named on N/10)": (
                "/api/v1/approvals/?assigned_to_me=true",
                "reviewer-1",
            ),
            "runs status=waiting, superuser": ("/api/v1/runs/?status=waiting", "bench-admin"),
            "runs status=waiting, reviewer-1": ("/api/v1/runs/?status=waiting", "reviewer-1"),
        }
        api = {}
        for label, (path, user) in lists.items():
            api[label] = {
                **http_latency(port, path, tokens[user], args.requests),
                **query_count(path, tokens[user]),
            }
        results["api"] = api
        results["loadavg_during_api"] = load

        # The bulk-created rows are real: decide some through the API; the workers finish them.
        chosen = list(
            ApprovalRequest.objects.filter(status=ApprovalStatus.PENDING)
            .exclude(run=template)
            .values_list("pk", "run_id")[: args.decide]
        )
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        for pk, _ in chosen:
            conn.request(
                "POST",
                f"/api/v1/approvals/{pk}/decide/",
                '{"action": "approve"}',
                {"Authorization": f"Token {tokens['alice']}", "Content-Type": "application/json"},
            )
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                raise RuntimeError(f"decide answered {response.status}")
        conn.close()
        run_ids = [r for _, r in chosen]
        c.wait_until(
            lambda: (
                WorkflowRun.objects.filter(pk__in=run_ids, status=RunStatus.COMPLETED).count()
                == len(run_ids)
            ),
            120,
            "decided bulk runs to complete",
        )
        results["decided_bulk_runs_completed"] = len(run_ids)
        time.sleep(2)
        rss[f"after_{len(run_ids)}_decided"] = [c.rss_mib(p) for p in workers]
        results["worker_rss_mib"] = rss
    finally:
        procs.stop()

    first, at_scale = list(rss.values())[:2]
    summary = {
        "runs": args.runs,
        "worker_rss_mib_1_waiting": first,
        "worker_rss_mib_all_waiting": at_scale,
        "rss_ratio_all_vs_1": [c.ratio(b, a) for a, b in zip(first, at_scale, strict=True)],
    }
    for label, figures in results["api"].items():
        summary[f"{label}: p50_ms / queries"] = [figures["p50_ms"], figures["queries"]]
        summary[f"{label}: target p50 < {TARGET_MS} ms"] = c.verdict(figures["p50_ms"] < TARGET_MS)
    summary["uptime_after"] = c.machine()["uptime"]
    c.emit("results", results)
    c.emit("summary", summary)


if __name__ == "__main__":
    main()
