"""Set up a fresh machine and run the product or its tests. Standard library only, so it runs
before anything is installed:

    python3 -m hitlproject.dev up      # web (daphne) + worker cluster (qcluster); Ctrl-C stops both
    python3 -m hitlproject.dev test    # lint, migration check, test suite (pytest args pass on)

Both are safe to run again: the virtualenv is reused and only reinstalled when pyproject.toml
changes; migrations and the demo login are idempotent.
"""

import hashlib
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = Path(os.environ.get("HITL_VENV", ROOT / ".venv"))
PYTHON = VENV / "bin" / "python"


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"up", "test", "setup"}:
        print(__doc__)
        return 2
    command, rest = argv[0], argv[1:]
    ensure_venv()
    os.chdir(ROOT)
    if Path(sys.prefix).resolve() != VENV.resolve():
        # Continue inside the virtualenv, where Django and friends are installed: the same
        # process, so a signal meant for this command (Ctrl-C, a process manager's SIGTERM)
        # reaches the code that stops the web server and the workers.
        os.execv(str(PYTHON), [str(PYTHON), "-m", "hitlproject.dev", command, *rest])
    return {"up": up, "test": test, "setup": lambda _: 0}[command](rest)


def ensure_venv() -> None:
    if not PYTHON.exists():
        print(f"* creating virtualenv in {VENV}")
        subprocess.check_call([sys.executable, "-m", "venv", str(VENV)])
    stamp = VENV / ".hitl-installed"
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == wanted:
        return
    print("* installing dependencies (pyproject.toml)")
    pip = [str(PYTHON), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    subprocess.check_call([*pip, "--upgrade", "pip"])
    subprocess.check_call([*pip, "-e", f"{ROOT}[test]"])
    stamp.write_text(wanted)


def manage(*args: str, **kwargs) -> int:
    return subprocess.call([str(PYTHON), "manage.py", *args], cwd=ROOT, **kwargs)


def base_url(host: str, port: str) -> str:
    """The origin `up` serves on, as links in emails and messages should name it."""
    if host in ("127.0.0.1", "0.0.0.0", "::", ""):
        host = "localhost"
    elif ":" in host:
        host = f"[{host}]"  # an IPv6 address
    return f"http://{host}:{port}"


def up(args: list[str]) -> int:
    # systemd, a container runtime or `timeout` stop with SIGTERM: stop both processes as
    # Ctrl-C does, instead of leaving the worker cluster running without its parent.
    signal.signal(signal.SIGTERM, _interrupt)
    host = os.environ.get("HOST", "127.0.0.1")
    port = os.environ.get("PORT", "8000")
    # Links in demo emails and messages must point at this server, on whatever port it got.
    os.environ.setdefault("HITL_BASE_URL", base_url(host, port))
    for step in (["migrate", "--noinput"], ["collectstatic", "--noinput", "-v", "0"]):
        if manage(*step):
            return 1
    username, password = demo_login()
    if manage(*demo_admin_args(username, password)):
        return 1
    # Reviewer accounts and runs in several states, so the queue is alive from the first visit.
    if manage("hitl_demo", "--worker-running"):
        return 1
    procs = {
        "web": subprocess.Popen(
            [str(VENV / "bin" / "daphne"), "-b", host, "-p", port, "hitlproject.asgi:application"],
            cwd=ROOT,
        ),
        "worker": subprocess.Popen([str(PYTHON), "manage.py", "qcluster"], cwd=ROOT),
    }
    url = f"http://{host}:{port}/"
    print(f"\n  HITL is running at {url}")
    print(f"  Review queue: {url}review/   Admin: {url}admin/   API docs: {url}api/docs/")
    print(f"  Log in as {username} / {password}")
    print("  Approvals wait in the queues of the demo reviewers listed above (password hitl-demo)")
    print("  Press Ctrl-C to stop the web server and the worker cluster.\n", flush=True)
    return supervise(procs)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def supervise(procs: dict[str, subprocess.Popen]) -> int:
    code = 0
    try:
        while True:
            for name, proc in procs.items():
                if proc.poll() is not None:
                    print(f"* {name} exited with {proc.returncode}; stopping the rest")
                    code = proc.returncode or 1
                    raise KeyboardInterrupt
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for proc in procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
    return code


def demo_admin_args(username: str, password: str) -> list[str]:
    """The ``manage.py`` arguments that create the demo admin. ``--`` ends the options: one
    generated password in 64 starts with "-", which argparse took for an option, so ``up``
    stopped before serving (found by CI, 2026-12-03)."""
    return ["hitl_demo_admin", "--", username, password]


def demo_login() -> tuple[str, str]:
    """A local demo superuser; the password is generated once and kept in var/."""
    path = Path(os.environ.get("HITL_DATA_DIR", ROOT / "var")) / "demo-login.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.write_text(f"admin {secrets.token_urlsafe(9)}\n")
        path.chmod(0o600)
    username, password = path.read_text().split()
    return username, password


def test(args: list[str]) -> int:
    checks = [
        ([str(VENV / "bin" / "ruff"), "check", "."], "ruff"),
        ([str(VENV / "bin" / "ruff"), "format", "--check", "."], "ruff format"),
        ([str(PYTHON), "manage.py", "makemigrations", "--check", "--dry-run"], "migrations"),
    ]
    for cmd, what in checks:
        print(f"* {what}: {' '.join(cmd[1:])}", flush=True)
        if subprocess.call(cmd, cwd=ROOT):
            print(f"* {what} failed")
            return 1
    mode = "PostgreSQL" if os.environ.get("DATABASE_URL", "").startswith("postgres") else "SQLite"
    redis = "Redis" if os.environ.get("REDIS_URL") else "no Redis"
    print(f"* tests ({mode}, {redis})", flush=True)
    return subprocess.call([str(PYTHON), "-m", "pytest", *args], cwd=ROOT)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
