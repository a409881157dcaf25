"""Real processes for the multi-process tests: daphne, a django-q2 cluster, redis-server, and
``manage.py shell -c`` for decisions made from another process. Everything started here is
stopped by ``Stack.stop()`` (call it in a ``finally``)."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode} before listening")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listened on port {port} within {timeout} s")


def test_database_url() -> str:
    """The database pytest-django created, as a URL the subprocesses' settings understand."""
    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


redis_server = shutil.which("redis-server")


class RedisServer:
    """A private redis-server on a free port, without persistence."""

    def __init__(self, workdir: Path, *, persist: bool = False) -> None:
        self.port = free_port()
        self.workdir = workdir
        # With persistence a restart keeps the data (group memberships) like a managed Redis.
        self.persist = persist
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                redis_server,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes" if self.persist else "no",
                "--appendfsync",
                "always",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, 10, self.proc)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self.proc = None


class Stack:
    """daphne + qcluster sharing the test database, in embedded mode or with ``redis_url``."""

    def __init__(
        self,
        workdir: Path,
        redis_url: str | None = None,
        *,
        database_url: str | None = None,
        workflow_modules: str = "tests.realtime.flows",
        workers: int = 1,
    ) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.procs: list[subprocess.Popen] = []
        env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
        env.update(
            DJANGO_SETTINGS_MODULE="hitlproject.settings",
            DATABASE_URL=database_url or test_database_url(),
            HITL_WORKFLOW_MODULES=workflow_modules,
            HITL_DATA_DIR=str(workdir / "data"),
            HITL_WORKERS=str(workers),
            HITL_Q_NAME=f"rt{self.port}",
            # A task lost while Redis was down is re-sent this soon by the sweeper.
            HITL_REQUEUE_AFTER_SECONDS="2",
            HITL_TIMER_TICK_SECONDS="0.5",
            PYTHONUNBUFFERED="1",
        )
        if redis_url:
            env["REDIS_URL"] = redis_url
        self.env = env

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen:
        log = open(self.workdir / f"{name}.log", "ab")  # noqa: SIM115  (closed with the process)
        proc = subprocess.Popen(
            args, cwd=ROOT, env=self.env, stdout=log, stderr=log, start_new_session=True
        )
        log.close()
        self.procs.append(proc)
        return proc

    def start(self, *, cluster: bool = True) -> None:
        """daphne, and (unless ``cluster`` is False) a django-q2 cluster."""
        daphne = self._spawn(
            "daphne",
            [
                str(BIN / "daphne"),
                "-b",
                "127.0.0.1",
                "-p",
                str(self.port),
                "hitlproject.asgi:application",
            ],
        )
        if cluster:
            self._spawn("qcluster", [sys.executable, "manage.py", "qcluster"])
        wait_for_port(self.port, 20, daphne)

    def shell(self, code: str, timeout: float = 30) -> subprocess.CompletedProcess:
        """Run ``code`` in ``manage.py shell -c`` with this stack's settings."""
        done = subprocess.run(
            [sys.executable, "manage.py", "shell", "-c", code],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if done.returncode != 0:
            raise RuntimeError(f"shell failed ({done.returncode}):\n{done.stderr}")
        return done

    def start_run(self, workflow: str, data: dict, username: str) -> str:
        return (
            self.shell(
                "from django.contrib.auth.models import User; from workflows import start; "
                f"print(start({workflow!r}, {data!r}, "
                f"created_by=User.objects.get(username={username!r})).id)"
            )
            .stdout.strip()
            .splitlines()[-1]
        )

    def notify(self, event_id: str, data: dict) -> subprocess.CompletedProcess:
        return self.shell(f"from workflows import notify; notify({event_id!r}, {data!r})")

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name} ---\n{p.read_text(errors='replace')[-3000:]}"
            for p in sorted(self.workdir.glob("*.log"))
        )

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                # qcluster stops its workers on SIGTERM; daphne closes its sockets.
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(8)
            except subprocess.TimeoutExpired:
                # Its own session: the group is this process and the workers it forked.
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        self.procs.clear()
