"""Realtime benchmark, Redis mode: how long from a decision to the WebSocket event, and one
update fanned out to many connected clients.

    .venv/bin/python bench/realtime_latency.py [--samples 200] [--clients 500]
                                               [--database-url postgres://.../scratch]

It starts a private redis-server, daphne and a django-q2 cluster (one worker) on free ports,
against a scratch database (a temporary SQLite file unless --database-url names one; it is
migrated and written to). The decision is ``workflows.notify()`` called in this process, which
publishes to Redis after commit like any web or worker process would.

Measured per sample, from the call to ``notify()``:
  * event     - the client receives ``event.received`` (commit + publish + daphne + socket);
  * finished  - the client receives ``run.finished`` (adds the worker picking the run up,
                replaying it and committing).
Among N connected: N clients each watch their own waiting run (500 review pages open at once);
decisions go to one run at a time; the same two figures for that run's client.
Fan-out: N clients watch one run; one decision; per-client time to ``event.received``.
"""

import argparse
import asyncio
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.realtime.processes import RedisServer, Stack  # noqa: E402

WAITING_SEQ = 2  # run.started, run.waiting


def percentiles(values: list[float]) -> dict[str, float]:
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    ms = 1000.0
    return {
        "n": len(values),
        "p50_ms": round(cuts[49] * ms, 1),
        "p99_ms": round(cuts[98] * ms, 1),
        "max_ms": round(max(values) * ms, 1),
    }


def start_waiting_runs(count: int, user, prefix: str, timeout: float = 180) -> list:
    from workflows import start
    from workflows.models import RunStatus, WorkflowRun

    runs = [start("bench-wait", {"key": f"{prefix}-{i}"}, created_by=user) for i in range(count)]
    ids = [r.pk for r in runs]
    deadline = time.monotonic() + timeout
    while WorkflowRun.objects.filter(pk__in=ids, status=RunStatus.WAITING).count() < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{count} runs did not reach their wait in {timeout} s")
        time.sleep(0.2)
    return runs


async def open_client(stack: Stack, run_id, token: str):
    from websockets.asyncio.client import connect

    ws = await connect(
        f"{stack.ws_url}/ws/runs/{run_id}/?since={WAITING_SEQ}",
        origin="http://127.0.0.1",
        additional_headers={"Authorization": f"Token {token}"},
        open_timeout=30,
        ping_interval=None,
    )
    # The pong comes after the server finished connect(): the client is subscribed.
    await ws.send(json.dumps({"type": "ping"}))
    while json.loads(await ws.recv())["type"] != "pong":
        pass
    return ws


async def wait_for(ws, event_type: str) -> float:
    while True:
        frame = json.loads(await ws.recv())
        if frame["type"] == event_type:
            return time.perf_counter()


def decide(key: str) -> None:
    from workflows import notify

    notify(f"bench-{key}", {"approved": True})


async def measure_latency(stack: Stack, token: str, runs: list, warmup: int) -> dict:
    event, finished = [], []
    for i, run in enumerate(runs):
        ws = await open_client(stack, run.pk, token)
        try:
            got_event = asyncio.create_task(wait_for(ws, "event.received"))
            began = time.perf_counter()
            await asyncio.to_thread(decide, run.input["key"])
            got_event = await got_event
            got_finished = await wait_for(ws, "run.finished")
        finally:
            await ws.close()
        if i >= warmup:
            event.append(got_event - began)
            finished.append(got_finished - began)
    return {"event": percentiles(event), "finished": percentiles(finished)}


async def open_many(stack: Stack, token: str, run_ids: list) -> list:
    sockets = []
    for batch in range(0, len(run_ids), 50):
        sockets += await asyncio.gather(
            *(open_client(stack, run_id, token) for run_id in run_ids[batch : batch + 50])
        )
    return sockets


async def measure_among_connected(
    stack: Stack, token: str, runs: list, samples: int, warmup: int
) -> dict:
    began_connecting = time.perf_counter()
    sockets = await open_many(stack, token, [run.pk for run in runs])
    connect_s = time.perf_counter() - began_connecting
    event, finished = [], []
    try:
        for i, (run, ws) in enumerate(list(zip(runs, sockets, strict=True))[: samples + warmup]):
            got_event = asyncio.create_task(wait_for(ws, "event.received"))
            began = time.perf_counter()
            await asyncio.to_thread(decide, run.input["key"])
            got_event = await got_event
            got_finished = await wait_for(ws, "run.finished")
            if i >= warmup:
                event.append(got_event - began)
                finished.append(got_finished - began)
    finally:
        await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
    return {
        "clients": len(sockets),
        "connect_all_s": round(connect_s, 1),
        "event": percentiles(event),
        "finished": percentiles(finished),
    }


async def measure_fanout(stack: Stack, token: str, run, clients: int) -> dict:
    began_connecting = time.perf_counter()
    sockets = await open_many(stack, token, [run.pk] * clients)
    connect_s = time.perf_counter() - began_connecting
    try:
        waiters = [asyncio.create_task(wait_for(ws, "event.received")) for ws in sockets]
        began = time.perf_counter()
        await asyncio.to_thread(decide, run.input["key"])
        arrivals = await asyncio.wait_for(asyncio.gather(*waiters), timeout=60)
    finally:
        await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
    return {
        "clients": len(arrivals),
        "connect_all_s": round(connect_s, 1),
        "event": percentiles([t - began for t in arrivals]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--clients", type=int, default=500)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="hitl-bench-realtime-"))
    redis = RedisServer(workdir)
    redis.start()
    database_url = args.database_url or f"sqlite:///{workdir / 'bench.sqlite3'}"
    stack = Stack(
        workdir, redis.url, database_url=database_url, workflow_modules="bench.realtime_flows"
    )
    os.environ.update(
        # The same django-q2 queue as the cluster, so this process's enqueues reach it.
        HITL_Q_NAME=stack.env["HITL_Q_NAME"],
        DJANGO_SETTINGS_MODULE="hitlproject.settings",
        DATABASE_URL=database_url,
        REDIS_URL=redis.url,
        HITL_DATA_DIR=str(workdir / "data"),
        HITL_WORKFLOW_MODULES="bench.realtime_flows",
        HITL_LOG_LEVEL="WARNING",
    )
    import django

    django.setup()
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from rest_framework.authtoken.models import Token

    call_command("migrate", verbosity=0)
    user = User.objects.create_user(f"bench-{os.getpid()}", is_staff=True)
    token = Token.objects.create(user=user).key

    logging.getLogger("django-q").setLevel(logging.WARNING)
    try:
        stack.start()
        runs = start_waiting_runs(args.samples + args.warmup, user, f"lat{os.getpid()}")
        latency = asyncio.run(measure_latency(stack, token, runs, args.warmup))
        crowd = start_waiting_runs(args.clients, user, f"crowd{os.getpid()}")
        among = asyncio.run(measure_among_connected(stack, token, crowd, args.samples, args.warmup))
        (fan_run,) = start_waiting_runs(1, user, f"fan{os.getpid()}")
        fanout = asyncio.run(measure_fanout(stack, token, fan_run, args.clients))
    finally:
        stack.stop()
        redis.stop()
    report = {
        "database": database_url.split(":")[0],
        "decision_to_event": latency["event"],
        "decision_to_run_finished": latency["finished"],
        "among_connected": among,
        "fanout": fanout,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
