"""Real daphne and qcluster processes, a real WebSocket client: a run goes step, waiting,
decision (from another process), finished, and the client sees every event in order, live."""

import json
import time

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from .processes import RedisServer, Stack, redis_server

pytestmark = [pytest.mark.multiprocess, pytest.mark.django_db(transaction=True)]

REVIEW_EVENTS = [
    "run.started",
    "step.finished",
    "progress",
    "run.waiting",
    "event.received",
    "step.finished",  # the wait's step, completed with the next step's start
    "step.finished",
    "run.finished",
]


def open_stream(stack: Stack, run_id: str, token: str, since: int):
    return connect(
        f"{stack.ws_url}/ws/runs/{run_id}/?since={since}",
        origin="http://127.0.0.1",
        additional_headers={"Authorization": f"Token {token}"},
        open_timeout=10,
    )


def events_until(ws, last_type: str, timeout: float = 20) -> list[dict]:
    """Run events (presence frames skipped) up to and including the first ``last_type``."""
    frames: list[dict] = []
    deadline = time.monotonic() + timeout
    while not frames or frames[-1]["type"] != last_type:
        frame = json.loads(ws.recv(timeout=max(0.1, deadline - time.monotonic())))
        if frame["seq"] is not None:
            frames.append(frame)
    return frames


def close_code_of(ws) -> int:
    """Read until the server closes; the code it closed with."""
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            ws.recv(timeout=5)
    return closed.value.rcvd.code


def assert_refusals_reach_the_client(stack: Stack, run_id: str, token: str) -> None:
    """Daphne must carry the documented close codes to a real client."""
    with connect(
        f"{stack.ws_url}/ws/runs/{run_id}/?since=0", origin="http://127.0.0.1", open_timeout=10
    ) as anonymous:
        assert close_code_of(anonymous) == 4401
    with open_stream(stack, run_id, token, since=0) as ws:
        ws.send(json.dumps({"pad": "x" * 5000}))
        assert close_code_of(ws) == 4413
    with pytest.raises(InvalidStatus) as refused:
        connect(f"{stack.ws_url}/ws/runs/{run_id}/", origin="http://evil.example", open_timeout=10)
    assert refused.value.response.status_code == 403


@pytest.mark.parametrize("mode", ["embedded", "redis"])
def test_client_sees_every_event_of_a_run_driven_by_other_processes(mode, alice, tmp_path):
    if mode == "redis" and redis_server is None:
        pytest.skip("redis-server is not installed: the Redis mode needs a private server")
    redis = RedisServer(tmp_path) if mode == "redis" else None
    stack = Stack(tmp_path, redis.url if redis else None)
    try:
        if redis:
            redis.start()
        stack.start()
        run_id = stack.start_run("rt-review", {"order_id": 9, "tag": mode}, "alice")
        assert_refusals_reach_the_client(stack, run_id, alice.token)
        with open_stream(stack, run_id, alice.token, since=0) as ws:
            frames = events_until(ws, "run.waiting")
            if mode == "redis":
                # A reviewer reads before deciding: an idle socket must stay subscribed past
                # the 5 s of channels-redis' blocking pop (see CHANNEL_LAYERS in settings).
                time.sleep(6)
            stack.notify(f"decision-{mode}", {"approved": True})
            frames += events_until(ws, "run.finished")
            with pytest.raises(TimeoutError):
                ws.recv(timeout=0.5)  # nothing after the end: no duplicates
        assert [f["type"] for f in frames] == REVIEW_EVENTS
        assert [f["seq"] for f in frames] == list(range(1, len(REVIEW_EVENTS) + 1))
        assert {f["run"] for f in frames} == {run_id}
        assert frames[4]["data"] == {"event_id": f"decision-{mode}", "data": {"approved": True}}
        assert frames[-1]["data"]["status"] == "completed"
    except BaseException:
        print(stack.logs())
        raise
    finally:
        stack.stop()
        if redis:
            redis.stop()
