"""Shared fixtures. Tests that need PostgreSQL or Redis skip with a reason when they are absent."""

import os
import sys
import threading
import time
from collections.abc import Callable

import pytest
from django.db import connection

from workflows import clock


@pytest.fixture(autouse=True)
def _reset_clock():
    clock.reset()
    yield
    clock.reset()


@pytest.fixture(autouse=True)
def _fresh_filter_choices():
    # Cached admin filter lists must not leak from one test's rows into the next.
    from workflows.choices import forget_choices

    forget_choices()
    yield
    forget_choices()


def run_in_threads(*targets: Callable[[], object], timeout: float = 60) -> None:
    """Start one thread per target, then wait for all of them (races against real locks)."""
    threads = [threading.Thread(target=target) for target in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)


def is_postgres() -> bool:
    return connection.vendor == "postgresql"


requires_postgres = pytest.mark.skipif(
    not os.environ.get("DATABASE_URL", "").startswith("postgres"),
    reason="needs PostgreSQL: set DATABASE_URL=postgres://postgres@127.0.0.1:5432/test",
)
requires_redis = pytest.mark.skipif(
    not os.environ.get("REDIS_URL"),
    reason="needs Redis: set REDIS_URL=redis://127.0.0.1:6379/0",
)


def pytest_unconfigure(config: pytest.Config) -> None:
    """Never let a wedged thread turn a finished test run into a hung CI job.

    A test that pytest-timeout failed can leave its event-loop thread (a non-daemon executor
    worker) blocked; the interpreter joins those at exit and would wait forever, hiding the
    report behind CI's time limit. After everything is reported, a daemon watchdog ends the
    process with pytest's own exit status if a normal exit has not happened within a minute.
    """
    status = int(getattr(config, "_hitl_exitstatus", 1))

    def exit_if_wedged() -> None:
        time.sleep(60)
        sys.stderr.write("pytest finished but a thread kept the process alive; exiting.\n")
        sys.stderr.flush()
        os._exit(status)

    threading.Thread(target=exit_if_wedged, name="hitl-exit-watchdog", daemon=True).start()


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    session.config._hitl_exitstatus = exitstatus
