"""Redis stopped while runs go on: nothing that commits breaks, runs complete, and a client
that reconnects with ``since`` receives every event it missed, in order."""

import json
import time

import pytest
from websockets.exceptions import ConnectionClosed

from workflows.models import RunStatus, WorkflowRun

from .processes import RedisServer, Stack, redis_server
from .test_live_processes import events_until, open_stream

pytestmark = [
    pytest.mark.multiprocess,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(redis_server is None, reason="redis-server is not installed"),
]

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


def test_runs_go_on_while_redis_is_down_and_a_reconnecting_client_misses_nothing(alice, tmp_path):
    redis = RedisServer(tmp_path)
    stack = Stack(tmp_path, redis.url)
    try:
        redis.start()
        stack.start()
        run_id = stack.start_run("rt-two-decisions", {"order_id": 3, "tag": "x"}, "alice")
        with open_stream(stack, run_id, alice.token, since=0) as ws:
            seen = events_until(ws, "run.waiting")
            redis.stop()
            # The server's consumer loses its channel layer and hangs up; the page reconnects.
            with pytest.raises(ConnectionClosed):
                while True:
                    frame = json.loads(ws.recv(timeout=10))
                    assert frame["seq"] is None, frame  # no run event can come through now

        # Meanwhile a decision arrives and the run advances (here in the deciding process,
        # since the worker's broker is down too): every publish fails, nothing breaks.
        outage = stack.shell(
            "from workflows import notify; from workflows.testing import run_until_idle; "
            "notify('first-x', {'ok': 1}); print(run_until_idle())"
        )
        assert "Publishing run events failed" in outage.stderr
        assert WorkflowRun.objects.get(pk=run_id).status == RunStatus.WAITING

        redis.start()  # same port, empty: group memberships and queued tasks are gone
        stack.notify("second-x", {"ok": 2})  # the worker completes the run once it reconnects
        missed = follow(stack, run_id, alice.token, since=seen[-1]["seq"], timeout=25)

        events = seen + missed
        assert [e["type"] for e in events] == TWO_DECISIONS
        assert [e["seq"] for e in events] == list(range(1, len(TWO_DECISIONS) + 1))
        assert events[-1]["data"]["result"] == {"first": {"ok": 1}, "second": {"ok": 2}}
        assert WorkflowRun.objects.get(pk=run_id).status == RunStatus.COMPLETED
    except BaseException:
        print(stack.logs())
        raise
    finally:
        stack.stop()
        redis.stop()
