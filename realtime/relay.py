"""The embedded mode's path from worker processes to this process's sockets.

Without Redis the channel layer is in-memory and reaches only the sockets of the ASGI process
it lives in, while events are committed by django-q2 workers, management commands or other
requests. The relay tails the outbox instead: every ``HITL_REALTIME_RELAY_INTERVAL`` it reads
the RunEvent rows with an id above the last one it forwarded and sends them to their groups.
It starts on the first WebSocket connection of the process and needs no extra server.

Ids are handed out at insert, not at commit: on PostgreSQL a transaction holding id 10 may
commit after id 11 was read. An id skipped that way is a *hole*; the relay keeps asking for it
for ``HITL_REALTIME_RELAY_HOLE_SECONDS`` (after that it was rolled back, or its run deleted).
SQLite runs one writer at a time, so there ids appear in commit order.
"""

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from channels.layers import get_channel_layer
from django.db import close_old_connections, connections

from . import selectors
from .conf import setting
from .delivery import forward

log = logging.getLogger(__name__)

BATCH = 500
# Bounds the bookkeeping when ids jump far (a PostgreSQL sequence skipping after a crash, or
# many deleted runs): only the newest holes are watched.
MAX_HOLES = 1000
# At start, ids this close below the newest one may belong to transactions still in flight.
START_LOOKBACK = 200


class OutboxRelay:
    def __init__(self) -> None:
        self.last_id = 0
        self.holes: dict[int, float] = {}  # id -> monotonic time after which we give up
        self.forwarded = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task | None = None
        self._ready: asyncio.Future | None = None
        # One thread, so the relay's queries use one database connection of their own and
        # never queue behind (or block) request handlers in sync_to_async's thread.
        self._executor: ThreadPoolExecutor | None = None

    async def ensure_running(self) -> None:
        """Start tailing (once per event loop) and return when the starting point is read.

        A consumer calls this before its catch-up query, so every event is either older than
        the relay's starting point (the catch-up has it) or forwarded live.
        """
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done() or self._loop is not loop:
            self._loop = loop
            self._ready = loop.create_future()
            self._task = loop.create_task(self._run(self._ready), name="hitl-outbox-relay")
        await asyncio.shield(self._ready)

    async def _run(self, ready: asyncio.Future) -> None:
        interval = setting("HITL_REALTIME_RELAY_INTERVAL")
        try:
            await self._db(self._start)
        except Exception as exc:
            ready.set_exception(exc)
            return
        ready.set_result(None)
        layer = get_channel_layer()
        rows: list[dict[str, Any]] = []
        while True:
            # A full batch means more are waiting: read on without sleeping.
            await asyncio.sleep(0 if len(rows) >= BATCH else interval)
            rows = []
            try:
                rows = await self._db(self._poll)
                if rows:
                    await forward(layer, rows)
                    self.forwarded += len(rows)
            except Exception:  # database restarting, say: keep tailing from the same point
                log.warning("Outbox relay poll failed; retrying", exc_info=True)

    async def _db(self, fn: Any) -> Any:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hitl-relay")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    def _start(self) -> None:
        close_old_connections()
        newest = selectors.last_event_id()
        low = max(0, newest - START_LOOKBACK)
        present = selectors.existing_event_ids(low, newest)
        deadline = time.monotonic() + setting("HITL_REALTIME_RELAY_HOLE_SECONDS")
        self.holes = {i: deadline for i in range(low + 1, newest + 1) if i not in present}
        self.last_id = newest

    def _poll(self) -> list[dict[str, Any]]:
        """Events committed since the last poll: late holes first, then new ids in order."""
        close_old_connections()
        now = time.monotonic()
        self.holes = {i: until for i, until in self.holes.items() if until > now}
        filled = selectors.events_by_id(list(self.holes)) if self.holes else []
        for row in filled:
            del self.holes[row["id"]]
        rows = selectors.events_after_id(self.last_id, BATCH)
        deadline = now + setting("HITL_REALTIME_RELAY_HOLE_SECONDS")
        expected = self.last_id + 1
        for row in rows:
            for missing in range(max(expected, row["id"] - MAX_HOLES), row["id"]):
                self.holes[missing] = deadline
            expected = row["id"] + 1
        if len(self.holes) > MAX_HOLES:
            self.holes = dict(sorted(self.holes.items())[-MAX_HOLES:])
        if rows:
            self.last_id = rows[-1]["id"]
        return filled + rows

    def shutdown(self) -> None:
        """Stop tailing and close the relay's database connection (process exit, tests)."""
        if self._task is not None and self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._task.cancel)
        self._task = None
        if self._executor is not None:
            self._executor.submit(connections.close_all).result()
            self._executor.shutdown(wait=True)
            self._executor = None


relay = OutboxRelay()
