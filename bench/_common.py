"""Shared helpers for the PostgreSQL + Redis benchmarks (throughput, round trip, scale).

A fresh database per run (dropped and recreated), a Redis database number of our own (flushed),
real ``manage.py qcluster`` / ``daphne`` processes started in their own session and always
stopped in ``finally`` blocks, wall-clock timing and percentiles. Every process started here
runs with ``DEBUG=false`` (with DEBUG Django keeps every query in memory).
"""

import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

BIN = Path(sys.executable).parent
PG_SERVER = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432")
REDIS_URL = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/12")
WORKFLOW_MODULES = "bench.flows"


# --- servers --------------------------------------------------------------------------------


def fresh_database(name: str) -> str:
    """Drop and recreate ``name`` on the benchmark PostgreSQL; returns its URL."""
    import psycopg

    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            [name],
        )
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{PG_SERVER}/{name}"


def flush_redis(url: str = REDIS_URL) -> None:
    import redis

    redis.Redis.from_url(url).flushdb()


def bench_env(database_url: str, *, workers: int = 2, **extra: str) -> dict[str, str]:
    """Environment for the driver and every process it starts."""
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
    env.update(
        DJANGO_SETTINGS_MODULE="hitlproject.settings",
        DEBUG="false",
        DATABASE_URL=database_url,
        REDIS_URL=REDIS_URL,
        HITL_WORKFLOW_MODULES=WORKFLOW_MODULES,
        HITL_WORKERS=str(workers),
        HITL_Q_NAME="hitl-bench",
        HITL_DATA_DIR=str(Path(tempfile.gettempdir()) / "hitl-bench-data"),
        HITL_LOG_LEVEL="WARNING",
        # The API throttle would otherwise cap the driver at 100 requests/s.
        HITL_API_USER_RATE="1000000/minute",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def setup_django(env: dict[str, str]) -> None:
    """Configure this (driver) process like the workers and set Django up."""
    os.environ.update(env)
    import django

    django.setup()


def manage(env: dict[str, str], *args: str, timeout: float = 600) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if done.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return done.stdout


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode} before listening")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listened on port {port} within {timeout} s")


class Processes:
    """Processes started for one benchmark phase; ``stop()`` (in a finally) ends them all."""

    def __init__(self, env: dict[str, str], name: str) -> None:
        self.env = env
        self.logdir = Path(tempfile.mkdtemp(prefix=f"hitl-bench-{name}-"))
        self.procs: list[subprocess.Popen] = []

    def spawn(self, name: str, args: list[str], env: dict[str, str] | None = None):
        log = open(self.logdir / f"{name}.log", "ab")  # noqa: SIM115  (closed below)
        proc = subprocess.Popen(
            args,
            cwd=ROOT,
            env=env or self.env,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        log.close()
        self.procs.append(proc)
        return proc

    def qcluster(self) -> subprocess.Popen:
        return self.spawn("qcluster", [sys.executable, "manage.py", "qcluster"])

    def daphne(self) -> tuple[subprocess.Popen, int]:
        port = free_port()
        proc = self.spawn(
            "daphne",
            [
                str(BIN / "daphne"),
                "-b",
                "127.0.0.1",
                "-p",
                str(port),
                "hitlproject.asgi:application",
            ],
        )
        wait_for_port(port, 30, proc)
        return proc, port

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name} ---\n{p.read_text(errors='replace')[-3000:]}"
            for p in sorted(self.logdir.glob("*.log"))
        )

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                # Its own session: the group is this process and everything it forked.
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
            # Workers forked by a killed parent may linger in the group.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        self.procs.clear()
        shutil.rmtree(self.logdir, ignore_errors=True)


def cluster_worker_pids(timeout: float = 30) -> list[int]:
    """Worker pids of the running django-q2 cluster (from its status in the broker)."""
    from django_q.status import Stat

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for stat in Stat.get_all():
            if stat.workers:
                return list(stat.workers)
        time.sleep(0.5)
    raise TimeoutError("the cluster reported no workers")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


# --- measuring ------------------------------------------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    return _stat_path(Path(f"/proc/{pid}/stat"))


def _stat_path(path: Path) -> list[str] | None:
    try:
        raw = path.read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2 :].split()  # fields from 3 (state) on


def session_cpu(sids: list[int]) -> float:
    """CPU seconds (user + system) of every live process in these sessions, plus that of the
    children they reaped (django-q2 recycles its workers every 500 tasks)."""
    total = 0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat(int(entry.name))
            if fields and int(fields[3]) in sids:  # field 6: session id
                # fields 14-17: utime, stime, cutime, cstime
                total += sum(int(f) for f in fields[11:15])
    return total / _TICK


def thread_cpu(tid: int) -> float:
    """CPU seconds (user + system) of one thread of this process (its native id)."""
    fields = _stat_path(Path(f"/proc/self/task/{tid}/stat"))
    return (int(fields[11]) + int(fields[12])) / _TICK if fields else 0.0


def pids_cpu(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        fields = _stat(pid)
        if fields:
            total += int(fields[11]) + int(fields[12])
    return total / _TICK


def host_cpu() -> float:
    """CPU seconds this machine spent busy, all processes together (user, nice, system, irq,
    softirq; not idle, I/O wait or steal, the time a shared host's other guests took)."""
    first = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    user, nice, system, _idle, _iowait, irq, softirq = (int(f) for f in first[1:8])
    return (user + nice + system + irq + softirq) / _TICK


def redis_cpu() -> float:
    """CPU seconds of every ``redis-server`` process on this machine."""
    pids = [
        int(entry.name)
        for entry in Path("/proc").iterdir()
        if entry.name.isdigit() and _comm(entry) == "redis-server"
    ]
    return pids_cpu(pids)


def _comm(entry: Path) -> str:
    try:
        return (entry / "comm").read_text().strip()
    except OSError:
        return ""


class Meter:
    """CPU seconds of the workers (their sessions), this driver, and the PostgreSQL backends
    of ``database`` (only those alive at the end: a recycled worker's backend is missed, so
    this one is a lower bound); the database's transactions (pg_stat_database); the WAL the
    server wrote (records from pg_stat_wal, bytes from the WAL position: the whole server, so
    nothing else should run meanwhile); and the database's row updates, with the share
    PostgreSQL made in place (HOT: no index entries). Also the CPU of Redis and of the whole
    machine: on a host whose two cores the workers, PostgreSQL, Redis and the driver share,
    a system's busy CPU per run is what decides its throughput, and unlike the wall clock it
    does not count the time other guests of a shared host took (steal). Statistics of work
    done just before ``start`` (a warm-up) may still arrive inside the window: an error of at
    most the warm-up's share of the units."""

    def __init__(self, database: str, sids: list[int]) -> None:
        self.database, self.sids = database, sids

    def _read(self) -> dict:
        import psycopg

        with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
            conn.execute("SELECT pg_stat_force_next_flush()")
            pids = [
                r[0]
                for r in conn.execute(
                    "SELECT pid FROM pg_stat_activity WHERE datname = %s", [self.database]
                )
            ]
            commits = conn.execute(
                "SELECT xact_commit FROM pg_stat_database WHERE datname = %s", [self.database]
            ).fetchone()[0]
            wal_records, wal_bytes = conn.execute(
                "SELECT wal_records, pg_current_wal_insert_lsn() - '0/0'::pg_lsn FROM pg_stat_wal"
            ).fetchone()
        with psycopg.connect(f"{PG_SERVER}/{self.database}", autocommit=True) as conn:
            updates, hot = (
                int(n)
                for n in conn.execute(
                    "SELECT coalesce(sum(n_tup_upd), 0), coalesce(sum(n_tup_hot_upd), 0) "
                    "FROM pg_stat_user_tables"
                ).fetchone()
            )
        import resource

        me = resource.getrusage(resource.RUSAGE_SELF)
        return {
            "workers": session_cpu(self.sids),
            "driver": me.ru_utime + me.ru_stime,
            "pg_pids": pids,
            "commits": commits,
            "wal": (wal_records, int(wal_bytes)),
            "updates": (updates, hot),
        }

    def start(self) -> None:
        self.before = self._read()
        self.before["postgres"] = pids_cpu(self.before["pg_pids"])
        self.before["redis"], self.before["host"] = redis_cpu(), host_cpu()

    def stop(self, units: int, unit: str) -> dict:
        # Backends report their statistics (transactions, WAL records, row updates) at most
        # once a second; one that goes idle within a second of its last report waits
        # PGSTAT_IDLE_INTERVAL (10 s) before reporting the rest. WAL bytes need no wait (the
        # WAL position, not a statistic). CPU is read before that wait, which is idle.
        redis, host = redis_cpu(), host_cpu()
        time.sleep(10.5)
        after = self._read()
        pids = sorted(set(self.before["pg_pids"]) | set(after["pg_pids"]))
        pg_after = pids_cpu(pids)
        pg_before = pids_cpu([]) + self.before["postgres"]
        per = 1000.0 / units
        return {
            f"workers_cpu_ms_per_{unit}": round(
                (after["workers"] - self.before["workers"]) * per, 2
            ),
            f"driver_cpu_ms_per_{unit}": round((after["driver"] - self.before["driver"]) * per, 2),
            f"postgres_cpu_ms_per_{unit}_lower_bound": round((pg_after - pg_before) * per, 2),
            f"redis_cpu_ms_per_{unit}": round((redis - self.before["redis"]) * per, 2),
            f"host_cpu_ms_per_{unit}": round((host - self.before["host"]) * per, 2),
            f"transactions_per_{unit}": round(
                (after["commits"] - self.before["commits"]) / units, 2
            ),
            f"wal_records_per_{unit}": round((after["wal"][0] - self.before["wal"][0]) / units, 1),
            f"wal_bytes_per_{unit}": round((after["wal"][1] - self.before["wal"][1]) / units),
            f"row_updates_per_{unit}": round(
                (after["updates"][0] - self.before["updates"][0]) / units, 2
            ),
            "hot_update_share": ratio(
                after["updates"][1] - self.before["updates"][1],
                after["updates"][0] - self.before["updates"][0],
            ),
        }


def wait_until(check: Callable[[], bool], timeout: float, what: str, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not happen within {timeout} s")
        time.sleep(interval)


def percentiles(values_s: list[float]) -> dict[str, float]:
    """p50 / p95 / p99 / max of durations given in seconds, in milliseconds."""
    values = sorted(values_s)
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return {
        "n": len(values),
        "p50_ms": round(cuts[49] * 1000, 1),
        "p95_ms": round(cuts[94] * 1000, 1),
        "p99_ms": round(cuts[98] * 1000, 1),
        "max_ms": round(values[-1] * 1000, 1),
    }


def ratio(a: float, b: float) -> float | None:
    return round(a / b, 2) if b else None


def verdict(ok: bool) -> str:
    return "target met" if ok else "NOT met"


def loadavg() -> str:
    return Path("/proc/loadavg").read_text().split(" ", 3)[:3].__str__()


def machine() -> dict:
    def out(*cmd: str) -> str:
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return "?"

    import psycopg

    with psycopg.connect(f"{PG_SERVER}/postgres") as conn:
        pg = conn.execute("SHOW server_version").fetchone()[0]
    import redis

    rv = redis.Redis.from_url(REDIS_URL).info("server")["redis_version"]
    return {
        "nproc": out("nproc"),
        "cpu": next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            "?",
        ),
        "mem_total": out("free", "-h").splitlines()[1].split()[1],
        "python": sys.version.split()[0],
        "postgresql": pg,
        "redis": rv,
        "uptime": out("uptime"),
    }


def emit(title: str, data: dict) -> None:
    print(f"\n== {title} ==")
    print(json.dumps(data, indent=2, default=str))
    sys.stdout.flush()
