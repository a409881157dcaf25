"""Redis stopped while runs go on: nothing that commits breaks, runs complete, and clients
that reconnect with ``since`` receive every event they missed, in order.

Figures are printed with ``-s`` and written to var/reliability/. ``HITL_RELIABILITY_LARGE=1``
runs 10 runs, each followed by its own client, instead of 3."""

import json
import time
from contextlib import ExitStack

import pytest
from websockets.exceptions import ConnectionClosed

from tests.reliability.conftest import LARGE
from tests.reliability.figures import backend, record
from workflows.models import RunStatus, WorkflowRun

from .processes import RedisServer, Stack, redis_server
from .test_live_processes import events_until, open_stream

pytestmark = [
    pytest.mark.multiprocess,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(redis_server is None, reason="redis-server is not installed"),
]

RUNS = 10 if LARGE else 3
TWO_DECISIONS = [
    "run.started",
    "step.finished",  # prepare
    "run.waiting",  # first
    "event.received",
    "step.finished",  # first (the wait's step)
    "step.finished",  # middle
    "run.waiting",  # second
    "event.received",
    "step.finished",  # second (the wait's step)
    "step.finished",  # apply
    "run.finished",
]


def follow(stack: Stack, run_id: str, token: str, since: int, timeout: float) -> list[dict]:
    """What a page does: (re)connect with the last seq it has until the run finishes.

    Right after Redis restarts, daphne's pooled connections to it are stale and one socket may
    still be closed (4503, or 1011 from daphne); the next attempt gets a fresh connection."""
    events: list[dict] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        cursor = events[-1]["seq"] if events else since
        try:
            with open_stream(stack, run_id, token, since=cursor) as ws:
                while not events or events[-1]["type"] != "run.finished":
                    try:
                        raw = ws.recv(timeout=max(0.1, deadline - time.monotonic()))
                    except TimeoutError:
                        raise TimeoutError(f"no run.finished in time; got {events}") from None
                    frame = json.loads(raw)
                    if frame["seq"] is not None:
                        events.append(frame)
                return events
        except ConnectionClosed:
            time.sleep(0.2)
    raise TimeoutError(f"the run did not finish within {timeout} s; got {events}")


def test_runs_go_on_while_redis_is_down_and_reconnecting_clients_miss_nothing(alice, tmp_path):
    redis = RedisServer(tmp_path)
    stack = Stack(tmp_path, redis.url)
    tags = [f"x{n}" for n in range(RUNS)]
    try:
        redis.start()
        stack.start()
        started = stack.shell(
            "import json; from django.contrib.auth.models import User; "
            "from workflows import start; alice = User.objects.get(username='alice'); "
            "print(json.dumps([str(start('rt-two-decisions', {'order_id': n, 'tag': t}, "
            f"created_by=alice).id) for n, t in enumerate({tags!r})]))"
        )
        run_ids = json.loads(started.stdout.strip().splitlines()[-1])
        with ExitStack() as sockets:
            streams = {
                run_id: sockets.enter_context(open_stream(stack, run_id, alice.token, since=0))
                for run_id in run_ids
            }
            seen = {run_id: events_until(ws, "run.waiting") for run_id, ws in streams.items()}
            redis.stop()
            went_down = time.monotonic()
            # The server's consumers lose their channel layer and hang up; pages reconnect.
            for ws in streams.values():
                with pytest.raises(ConnectionClosed):
                    while True:
                        frame = json.loads(ws.recv(timeout=10))
                        assert frame["seq"] is None, frame  # no run event can come through now

        # Meanwhile decisions arrive and the runs advance (here in the deciding process, since
        # the worker's broker is down too): every publish fails, nothing breaks.
        outage = stack.shell(
            "from workflows import notify; from workflows.testing import run_until_idle; "
            f"[notify(f'first-{{t}}', {{'ok': 1}}) for t in {tags!r}]; print(run_until_idle())"
        )
        assert "Publishing run events failed" in outage.stderr
        assert set(WorkflowRun.objects.filter(pk__in=run_ids).values_list("status", flat=True)) == {
            RunStatus.WAITING
        }

        redis.start()  # same port, empty: group memberships and queued tasks are gone
        came_back = time.monotonic()
        # The worker completes the runs once it has reconnected to the broker.
        stack.shell(
            "from workflows import notify; "
            f"[notify(f'second-{{t}}', {{'ok': 2}}) for t in {tags!r}]"
        )
        missed = {
            run_id: follow(stack, run_id, alice.token, since=seen[run_id][-1]["seq"], timeout=25)
            for run_id in run_ids
        }
        caught_up = time.monotonic()

        for run_id in run_ids:
            events = seen[run_id] + missed[run_id]
            assert [e["type"] for e in events] == TWO_DECISIONS
            assert [e["seq"] for e in events] == list(range(1, len(TWO_DECISIONS) + 1))
            assert events[-1]["data"]["result"] == {"first": {"ok": 1}, "second": {"ok": 2}}
        assert set(WorkflowRun.objects.filter(pk__in=run_ids).values_list("status", flat=True)) == {
            RunStatus.COMPLETED
        }
    except BaseException:
        print(stack.logs())
        raise
    finally:
        stack.stop()
        redis.stop()
    record(
        f"redis_outage_{backend()['database']}",
        "Redis stopped and started",
        {
            "runs": RUNS,
            "clients": RUNS,
            "decisions_while_redis_was_down": RUNS,
            "events_before_the_outage": sum(len(events) for events in seen.values()),
            "events_caught_up_after_reconnecting": sum(len(events) for events in missed.values()),
            "events_lost": 0,
            "redis_down_seconds": round(came_back - went_down, 1),
            "restart_to_every_client_caught_up_seconds": round(caught_up - came_back, 1),
            "database": backend()["database"],
        },
    )
