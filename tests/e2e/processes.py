"""Starting real worker (qcluster) and web (daphne) processes against the test database."""

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from django.db import connection

ROOT = Path(__file__).resolve().parents[2]


def database_url() -> str:
    """The URL of the database pytest-django created, for child processes."""
    s = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{s['NAME']}"
    user = s.get("USER") or "postgres"
    return f"postgres://{user}@{s.get('HOST') or '127.0.0.1'}:{s.get('PORT') or 5432}/{s['NAME']}"


def child_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "hitlproject.settings",
            "DATABASE_URL": database_url(),
            # A queue of its own, so stale tasks of other test runs never reach these workers.
            "HITL_Q_NAME": f"hitl-test-{uuid.uuid4().hex[:8]}",
            "HITL_WORKERS": "2",
            # Short task timeout and lease so crash recovery happens within seconds.
            "HITL_TASK_TIMEOUT": "6",
            "HITL_TASK_RETRY": "9",
            "HITL_LEASE_SECONDS": "7",
            "HITL_ADVANCE_BUDGET_SECONDS": "3",
            "HITL_REQUEUE_AFTER_SECONDS": "3",
            "HITL_TIMER_TICK_SECONDS": "0.2",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra)
    return env


class Cluster:
    """A `manage.py qcluster` in its own process group, so SIGKILL takes all its processes."""

    def __init__(self, env: dict[str, str], log: Path):
        self.log = log
        self._file = open(log, "ab")  # noqa: SIM115  (closed in stop())
        self.proc = subprocess.Popen(
            [sys.executable, "manage.py", "qcluster"],
            cwd=ROOT,
            env=env,
            stdout=self._file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def kill(self) -> None:
        """SIGKILL the whole cluster: sentinel, workers, monitor, pusher. No cleanup runs."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        self._file.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=15)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                self.kill()
        if not self._file.closed:
            self._file.close()


def wait_until(predicate, timeout: float, interval: float = 0.2, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"Timed out after {timeout}s waiting for {what}")
