"""The README's first command, ``python3 -m hitlproject.dev up``, stopped the way a process
manager stops it (SIGTERM, as systemd, a container runtime or ``timeout`` do): the web server
and the worker cluster stop with it instead of running on without a parent."""

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.processes import wait_until
from tests.realtime.processes import free_port, wait_for_port

pytestmark = pytest.mark.multiprocess

ROOT = Path(__file__).resolve().parents[2]


def children(pid: int) -> list[int]:
    done = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    return [int(line) for line in done.stdout.split()]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone in every way that matters here (it waits only for its parent to reap it).
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "State:\tZ" not in status.read_text()


def test_sigterm_stops_the_web_server_and_the_workers(tmp_path):
    port = free_port()
    env = {
        **os.environ,
        # The embedded default in a directory of its own: never the database the tests use.
        "DATABASE_URL": "",
        "REDIS_URL": "",
        "HITL_DATA_DIR": str(tmp_path),
        "HOST": "127.0.0.1",
        "PORT": str(port),
    }
    with open(tmp_path / "up.log", "wb") as log:
        up = subprocess.Popen(
            [sys.executable, "-m", "hitlproject.dev", "up"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_for_port(port, 120, up)

            def running() -> list[int] | None:
                # daphne and qcluster, and the cluster's own processes (sentinel, workers...).
                started = children(up.pid)
                cluster = [pid for child in started for pid in children(child)]
                return started + cluster if len(started) == 2 and cluster else None

            processes = wait_until(running, timeout=60, what="daphne, qcluster and its workers")
            up.send_signal(signal.SIGTERM)
            assert up.wait(timeout=30) == 0
            wait_until(
                lambda: not any(alive(pid) for pid in processes),
                timeout=20,
                what="every process of 'dev up' to stop",
            )
        finally:
            # The whole session, orphans included: a failing run must not leave servers behind.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(up.pid, signal.SIGKILL)
            up.wait(timeout=10)
    assert "HITL is running at" in (tmp_path / "up.log").read_text()
