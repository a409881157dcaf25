"""Upstash (seed 000) end to end with real processes: a worker cluster runs the workflow,
daphne serves the live page's WebSocket, a reviewer approves from another process
(``manage.py hitl_notify``), and a real WebSocket client sees each event once, in order."""

import json
import os
import subprocess
import sys
import time

import pytest
from django.contrib.auth.models import User
from rest_framework.authtoken.models import Token
from websockets.sync.client import connect

from tests.realtime.processes import ROOT, Stack

pytestmark = [pytest.mark.multiprocess, pytest.mark.django_db(transaction=True)]

# What the seed's page listens to, in our names: stepFinish, waitingForInput, inputResolved,
# runFinish (plus the engine's own run.started and run.waiting).
PAGE_EVENTS = [
    "run.started",
    "step.finished",
    "waiting-for-input",
    "run.waiting",
    "event.received",
    "step.finished",  # the wait's step, completed with the next step's start
    "step.finished",
    "run.finished",
]


def frames_until(ws, last_type: str, timeout: float = 20) -> list[dict]:
    frames: list[dict] = []
    deadline = time.monotonic() + timeout
    while not frames or frames[-1]["type"] != last_type:
        frame = json.loads(ws.recv(timeout=max(0.1, deadline - time.monotonic())))
        if frame["seq"] is not None:  # presence and pong frames carry no seq
            frames.append(frame)
    return frames


def test_live_page_sees_steps_waiting_decision_and_finish(tmp_path):
    user = User.objects.create_user("page-viewer")
    token = Token.objects.create(user=user).key
    stack = Stack(
        tmp_path, os.environ.get("REDIS_URL") or None, workflow_modules="examples.workflows"
    )
    try:
        stack.start()
        run_id = stack.start_run(
            "upstash-approval", {"user_id": "u-7", "action": "export data"}, "page-viewer"
        )
        with connect(
            f"{stack.ws_url}/ws/runs/{run_id}/?since=0",
            origin="http://127.0.0.1",
            additional_headers={"Authorization": f"Token {token}"},
            open_timeout=10,
        ) as ws:
            frames = frames_until(ws, "run.waiting")
            waiting = frames[-2]["data"]
            assert waiting["message"] == "Waiting for approval to process action: export data"
            assert [b["label"] for b in waiting["buttons"]] == ["Approve", "Reject"]
            event_id = frames[-1]["data"]["event_id"]
            assert event_id == waiting["event_id"] == f"approval-{run_id}"

            # The Approve button, pressed from another process.
            approve = next(b["data"] for b in waiting["buttons"] if b["label"] == "Approve")
            subprocess.run(
                [
                    sys.executable,
                    "manage.py",
                    "hitl_notify",
                    event_id,
                    "--data",
                    json.dumps(approve),
                ],
                cwd=ROOT,
                env=stack.env,
                check=True,
                capture_output=True,
                timeout=30,
            )
            frames += frames_until(ws, "run.finished")
            with pytest.raises(TimeoutError):
                ws.recv(timeout=0.5)  # nothing more, in particular no duplicate

        assert [f["type"] for f in frames] == PAGE_EVENTS
        assert [f["seq"] for f in frames] == list(range(1, len(PAGE_EVENTS) + 1))
        assert [f["data"]["step"] for f in frames if f["type"] == "step.finished"] == [
            "initial-processing",
            "wait-for-approval",
            "process-approved",
        ]
        assert frames[4]["data"] == {"event_id": event_id, "data": {"approved": True}}
        assert frames[-1]["data"]["status"] == "completed"  # the page shows "Workflow finished"
        assert frames[-1]["data"]["result"]["approved"] is True
    except BaseException:
        print(stack.logs())
        raise
    finally:
        stack.stop()
