"""Getting committed run events to Channels groups.

Two paths, chosen by the channel layer (``HITL_REALTIME_DELIVERY``, default "auto"):

* **publish** (channels-redis): the process that committed the events (web, django-q2 worker,
  management command) sends them to the groups right after commit, from the
  ``run_events_committed`` signal.
* **relay** (in-memory layer, the embedded mode): the in-memory layer only reaches sockets of
  its own process, so the ASGI process tails the RunEvent table instead (``realtime.relay``)
  and committing processes send nothing.

Either way delivery is best effort: the channel layer is at-most-once, so clients reconnect
with ``since`` and the consumers fill any gap from the database. The code that committed only
asks Redis which groups have members (``ListenerCheck``, one bounded round trip) and queues the
events someone listens to; it never waits for the send. A failed publish is logged and retried
from the bounded queue.
"""

import asyncio
import itertools
import logging
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Iterable
from multiprocessing.util import Finalize
from typing import Any

import redis
from channels.layers import BaseChannelLayer, get_channel_layer
from channels_redis.core import RedisChannelLayer
from django.conf import settings
from redis.backoff import NoBackoff
from redis.retry import Retry

from . import selectors
from .conf import setting
from .groups import groups_for
from .messages import batch_message, group_message

log = logging.getLogger(__name__)

# Most events the sender sends before it looks at the queue again.
SEND_CHUNK = 500
# Most events of one group in one channel-layer message.
BATCH_EVENTS = 100


def uses_relay() -> bool:
    mode = setting("HITL_REALTIME_DELIVERY")
    if mode != "auto":
        return mode == "relay"
    backend = settings.CHANNEL_LAYERS.get("default", {}).get("BACKEND", "")
    return backend.endswith("InMemoryChannelLayer")


async def forward(layer: BaseChannelLayer, rows: Iterable[dict[str, Any]]) -> None:
    """Send the events to every group they belong to that has members, each group's in the
    order given.

    The events of one group go in one message (up to ``BATCH_EVENTS``): a step boundary or a
    run's end commits several events of one run at once, and every ``group_send`` costs
    channels-redis a few Redis round trips, whoever listens.
    """
    batches: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        message = group_message(row)
        for group in groups_for(row["type"], row["run_id"]):
            batches.setdefault(group, []).append(message)
    for group in await listened(layer, list(batches)):
        messages = batches[group]
        for start in range(0, len(messages), BATCH_EVENTS):
            await layer.group_send(group, batch_message(messages[start : start + BATCH_EVENTS]))


async def listened(layer: BaseChannelLayer, groups: list[str]) -> list[str]:
    """The groups that have members, in the order given.

    channels-redis' ``group_send`` reads a group's members before sending (two round trips:
    drop the expired ones, list the rest) whether anyone listens or not, and most events go to
    runs nobody is watching. One pipelined ``EXISTS`` per Redis shard, for every group of a
    publish at once, finds the groups worth sending to: Redis deletes a group's sorted set
    with its last member. A consumer that joins just after this check reads the event from
    the database in the catch-up that follows its join, as it would after ``group_send``'s
    own read of the members. Other layers are sent to unfiltered.
    """
    if not isinstance(layer, RedisChannelLayer) or not groups:
        return groups
    found: set[str] = set()
    for index, members in _by_shard(layer, groups).items():
        pipe = layer.connection(index).pipeline(transaction=False)
        for group in members:
            pipe.exists(layer._group_key(group))
        found.update(group for group, n in zip(members, await pipe.execute(), strict=True) if n)
    return [group for group in groups if group in found]


def _by_shard(layer: RedisChannelLayer, groups: list[str]) -> dict[int, list[str]]:
    shards: dict[int, list[str]] = {}
    for group in groups:
        shards.setdefault(layer.consistent_hash(group), []).append(group)
    return shards


class ListenerCheck:
    """``listened`` for the committing thread, with a synchronous Redis client.

    Handing a commit's events to the publishing thread costs that thread about half a
    millisecond of CPU per commit (the wake-up of its event loop, an asyncio round trip)
    before it finds, most of the time, that nobody watches the run. Asking here instead costs
    one plain round trip (about a tenth of that), and the events nobody listens to are never
    queued. The events that are queued are checked again when sent, as before.

    The committing code must not hang on Redis: each shard's client has ``timeout`` for
    connecting and answering and no retries, and after a failure the check is skipped for
    ``retry`` seconds (``None``: cannot tell, so everything is queued and the publishing
    thread's own check, retries and backlog take over, as without this check).
    """

    def __init__(self, layer: RedisChannelLayer, timeout: float, retry: float) -> None:
        self.layer, self.timeout, self.retry = layer, timeout, retry
        self.pid = os.getpid()
        self.clients: dict[int, redis.Redis] = {}
        self.skip_until = 0.0

    def __call__(self, groups: list[str]) -> set[str] | None:
        if time.monotonic() < self.skip_until:
            return None
        found: set[str] = set()
        try:
            for index, members in _by_shard(self.layer, groups).items():
                pipe = self._client(index).pipeline(transaction=False)
                for group in members:
                    pipe.exists(self.layer._group_key(group))
                found.update(g for g, n in zip(members, pipe.execute(), strict=True) if n)
        except Exception as exc:
            self.skip_until = time.monotonic() + self.retry
            log.info("Checking for listeners failed (%s); publishing unfiltered for now", exc)
            return None
        return found

    def _client(self, index: int) -> redis.Redis:
        if index not in self.clients:
            self.clients[index] = redis.Redis(connection_pool=self._pool(index))
        return self.clients[index]

    def _pool(self, index: int) -> redis.ConnectionPool:
        # channels_redis.utils.create_pool, synchronous: the same hosts, the same options
        # (TLS, credentials, sentinels), with short timeouts and no retries.
        host = dict(self.layer.hosts[index])
        host.update(
            socket_timeout=self.timeout,
            socket_connect_timeout=self.timeout,
            retry=Retry(NoBackoff(), 0),
        )
        if "address" in host:
            return redis.ConnectionPool.from_url(host.pop("address"), **host)
        master_name = host.pop("master_name", None)
        if master_name is not None:
            sentinels = host.pop("sentinels")
            sentinel = redis.sentinel.Sentinel(
                sentinels, sentinel_kwargs=host.pop("sentinel_kwargs", None)
            )
            return redis.sentinel.SentinelConnectionPool(master_name, sentinel, **host)
        return redis.ConnectionPool(**host)


_checks: "weakref.WeakKeyDictionary[RedisChannelLayer, ListenerCheck]" = weakref.WeakKeyDictionary()


def worth_publishing(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows with a group that has members (all of them when that cannot be told)."""
    layer = get_channel_layer()
    if not isinstance(layer, RedisChannelLayer):
        return rows
    check = _checks.get(layer)
    # One per layer and process: a forked django-q2 worker must not share its parent's sockets.
    if check is None or check.pid != os.getpid():
        check = _checks[layer] = ListenerCheck(
            layer,
            timeout=setting("HITL_REALTIME_CHECK_TIMEOUT"),
            retry=setting("HITL_REALTIME_PUBLISH_RETRY"),
        )
    groups = {row["id"]: groups_for(row["type"], row["run_id"]) for row in rows}
    found = check(sorted({group for names in groups.values() for group in names}))
    if found is None:
        return rows
    return [row for row in rows if not found.isdisjoint(groups[row["id"]])]


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
        rows = worth_publishing(rows)
        if rows:
            publisher().publish(rows)
    except Exception:  # the commit happened; a missed live update is caught up on reconnect
        log.warning("Could not publish run events %s", event_ids, exc_info=True)


class Publisher:
    """Publishes from synchronous code through one event loop kept for the process.

    ``publish`` only queues the rows: the committing thread (a worker between two steps, a
    request answering a decision) never waits for the send. One sender task in a long-lived loop
    (in a daemon thread, so channels-redis' connection pool stays warm) sends the queue in
    order, everything queued since its last send at once, so events of this process reach each
    group in commit order.

    When the layer fails, the rows stay queued (up to ``HITL_REALTIME_PUBLISH_BACKLOG``, oldest
    dropped first) and the sender tries again, quickly the first time because the usual failure
    after a Redis restart is one stale pooled connection, then every
    ``HITL_REALTIME_PUBLISH_RETRY`` seconds. When the process ends (interpreter exit, or a
    multiprocessing child such as a django-q2 worker returning) the queue gets up to
    ``HITL_REALTIME_PUBLISH_TIMEOUT`` to drain, so a short-lived or recycled process does not
    take its last events with it.
    """

    def __init__(self) -> None:
        self.pid = os.getpid()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="hitl-realtime-publisher", daemon=True
        )
        self._thread.start()
        self._lock = threading.Lock()
        self._queue: deque[tuple[int, dict[str, Any]]] = deque()
        self._numbers = itertools.count(1)
        self._sending = False
        self._failing = False
        self._last_send = 0.0
        # Drain the queue before the process ends. multiprocessing's exit hook runs at
        # interpreter exit *and* when a multiprocessing child returns (a django-q2 worker
        # recycled after ``recycle`` tasks, or stopped), where atexit handlers never run; without
        # it the events of a recycled worker's last task were lost (found by the realtime bench).
        self._finalizer = Finalize(None, self.flush, exitpriority=100)

    def publish(self, rows: list[dict[str, Any]]) -> None:
        """Queue the rows for the sender; returns at once."""
        with self._lock:
            self._keep(rows)
            if self._sending:
                return
            self._sending = True
        self._loop.call_soon_threadsafe(self._loop.create_task, self._sender())

    @property
    def backlog(self) -> int:
        """Rows queued and not yet sent."""
        return len(self._queue)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything queued was sent (True) or ``timeout`` passed (False)."""
        if timeout is None:
            timeout = setting("HITL_REALTIME_PUBLISH_TIMEOUT")
        deadline = time.monotonic() + timeout
        while self._queue or self._sending:
            if time.monotonic() >= deadline or not self._thread.is_alive():
                return False
            time.sleep(0.005)
        return True

    def _keep(self, rows: list[dict[str, Any]]) -> None:
        self._queue.extend((next(self._numbers), row) for row in rows)
        overflow = len(self._queue) - setting("HITL_REALTIME_PUBLISH_BACKLOG")
        for _ in range(overflow):
            self._queue.popleft()
        if overflow > 0:
            log.warning("Publish backlog full: dropped the %d oldest events", overflow)

    async def _sender(self) -> None:
        while True:
            # Under load, events of the next few milliseconds go out with these: one send (one
            # members check, one message per group) then carries several commits. A publisher
            # that sent nothing for that long sends at once.
            wait = self._last_send + setting("HITL_REALTIME_PUBLISH_COALESCE") - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            with self._lock:
                chunk = list(itertools.islice(self._queue, SEND_CHUNK))
                if not chunk:
                    self._sending = False
                    return
            # Only a send starts the window: finding the queue empty is not one.
            self._last_send = time.monotonic()
            try:
                await asyncio.wait_for(
                    forward(get_channel_layer(), [row for _, row in chunk]),
                    timeout=setting("HITL_REALTIME_PUBLISH_TIMEOUT"),
                )
            except Exception as exc:
                delay = setting("HITL_REALTIME_PUBLISH_RETRY") if self._failing else 0.1
                if not self._failing:
                    log.warning(
                        "Publishing run events failed (%s: %s); retrying in the background",
                        type(exc).__name__,
                        exc,
                    )
                self._failing = True
                await asyncio.sleep(delay)
                continue
            if self._failing:
                self._failing = False
                log.warning("Publishing run events works again")
            with self._lock:
                while self._queue and self._queue[0][0] <= chunk[-1][0]:
                    self._queue.popleft()

    def close(self) -> None:
        self._finalizer.cancel()

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
