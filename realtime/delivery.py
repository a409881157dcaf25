"""Getting committed run events to Channels groups.

Two paths, chosen by the channel layer (``HITL_REALTIME_DELIVERY``, default "auto"):

* **publish** (channels-redis): the process that committed the events (web, django-q2 worker,
  management command) sends them to the groups right after commit, from the
  ``run_events_committed`` signal.
* **relay** (in-memory layer, the embedded mode): the in-memory layer only reaches sockets of
  its own process, so the ASGI process tails the RunEvent table instead (``realtime.relay``)
  and committing processes send nothing.

Either way delivery is best effort: the channel layer is at-most-once, so clients reconnect
with ``since`` and the consumers fill any gap from the database. A failed publish is logged,
retried from a bounded backlog, and never reaches the code that committed.
"""

import asyncio
import itertools
import logging
import os
import threading
from collections import deque
from collections.abc import Iterable
from typing import Any

from channels.layers import BaseChannelLayer, get_channel_layer
from django.conf import settings

from . import selectors
from .conf import setting
from .groups import groups_for
from .messages import group_message

log = logging.getLogger(__name__)

# Backlog events sent per retry attempt.
RETRY_CHUNK = 100


def uses_relay() -> bool:
    mode = setting("HITL_REALTIME_DELIVERY")
    if mode != "auto":
        return mode == "relay"
    backend = settings.CHANNEL_LAYERS.get("default", {}).get("BACKEND", "")
    return backend.endswith("InMemoryChannelLayer")


async def forward(layer: BaseChannelLayer, rows: Iterable[dict[str, Any]]) -> None:
    """Send each event, in the order given, to every group it belongs to."""
    for row in rows:
        message = group_message(row)
        for group in groups_for(row["type"], row["run_id"]):
            await layer.group_send(group, message)


def on_events_committed(
    sender: Any, event_ids: list[int], events: list | None = None, **kwargs: Any
) -> None:
    """Receiver of ``workflows.signals.run_events_committed`` (connected in apps.py)."""
    if not event_ids or uses_relay():
        return
    try:
        # The committed rows come with the signal; reading them back cost a query per commit.
        rows = (
            [{field: getattr(e, field) for field in selectors.EVENT_FIELDS} for e in events]
            if events is not None
            else selectors.events_by_id(event_ids)
        )
        if rows:
            publisher().publish(rows)
    except Exception:  # the commit happened; a missed live update is caught up on reconnect
        log.warning("Could not publish run events %s", event_ids, exc_info=True)


class Publisher:
    """Publishes from synchronous code through one event loop kept for the process.

    ``async_to_sync`` would build (and tear down) an event loop and a Redis connection per
    commit; a long-lived loop in a daemon thread keeps channels-redis' connection pool warm.
    The committing thread waits at most ``HITL_REALTIME_PUBLISH_TIMEOUT``, so events of one
    thread go out in commit order and a dead layer costs one bounded delay.

    Events that could not be sent are kept, in order, in a bounded backlog that the loop
    retries in the background; while it is not empty new events queue behind it and the
    committing code does not wait at all. The first retry comes quickly because the usual
    failure after a Redis restart is one stale pooled connection.
    """

    def __init__(self) -> None:
        self.pid = os.getpid()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="hitl-realtime-publisher", daemon=True
        )
        self._thread.start()
        self._lock = threading.Lock()
        self._backlog: deque[tuple[int, dict[str, Any]]] = deque()
        self._numbers = itertools.count(1)
        self._retrying = False

    def publish(self, rows: list[dict[str, Any]]) -> bool:
        """True if sent now; False if kept for the background retry."""
        with self._lock:
            if self._backlog:
                self._keep(rows)
                return False
        future = asyncio.run_coroutine_threadsafe(self._send(rows), self._loop)
        try:
            future.result(timeout=setting("HITL_REALTIME_PUBLISH_TIMEOUT"))
        except Exception as exc:
            future.cancel()
            log.warning(
                "Publishing run events failed (%s: %s); retrying in the background",
                type(exc).__name__,
                exc,
            )
            with self._lock:
                self._keep(rows)
                start, self._retrying = not self._retrying, True
            if start:
                self._loop.call_soon_threadsafe(self._loop.create_task, self._retry())
            return False
        return True

    @property
    def backlog(self) -> int:
        return len(self._backlog)

    def _keep(self, rows: list[dict[str, Any]]) -> None:
        self._backlog.extend((next(self._numbers), row) for row in rows)
        overflow = len(self._backlog) - setting("HITL_REALTIME_PUBLISH_BACKLOG")
        for _ in range(overflow):
            self._backlog.popleft()
        if overflow > 0:
            log.warning("Publish backlog full: dropped the %d oldest events", overflow)

    async def _retry(self) -> None:
        delay = 0.1
        while True:
            await asyncio.sleep(delay)
            with self._lock:
                chunk = list(itertools.islice(self._backlog, RETRY_CHUNK))
                if not chunk:
                    self._retrying = False
                    return
            try:
                await asyncio.wait_for(
                    self._send([row for _, row in chunk]),
                    timeout=setting("HITL_REALTIME_PUBLISH_TIMEOUT") * 5,
                )
            except Exception:
                delay = setting("HITL_REALTIME_PUBLISH_RETRY")
                log.debug("Publishing the backlog failed; next try in %s s", delay, exc_info=True)
                continue
            delay = 0
            with self._lock:
                while self._backlog and self._backlog[0][0] <= chunk[-1][0]:
                    self._backlog.popleft()
                if not self._backlog:
                    log.warning("Publishing run events works again; backlog sent")

    async def _send(self, rows: list[dict[str, Any]]) -> None:
        await forward(get_channel_layer(), rows)

    def close(self) -> None:
        def stop() -> None:
            for task in asyncio.all_tasks(self._loop):
                task.cancel()
            self._loop.stop()

        self._loop.call_soon_threadsafe(stop)
        self._thread.join(timeout=5)
        try:
            self._loop.close()  # channels-redis closes this loop's connections here
        except Exception:
            log.debug("Closing the publisher's event loop failed", exc_info=True)


_publisher: Publisher | None = None
_publisher_lock = threading.Lock()


def publisher() -> Publisher:
    """The process's publisher; a forked child (django-q2 worker) makes its own."""
    global _publisher
    with _publisher_lock:
        if _publisher is None or _publisher.pid != os.getpid():
            _publisher = Publisher()
        return _publisher


def reset_publisher() -> None:
    """Drop the process's publisher (its backlog and its connections); tests use it."""
    global _publisher
    with _publisher_lock:
        if _publisher is not None and _publisher.pid == os.getpid():
            _publisher.close()
        _publisher = None
