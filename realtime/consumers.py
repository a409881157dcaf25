"""WebSocket consumers: ``/ws/runs/<run id>/`` and ``/ws/approvals/``.

They only forward: access rules live in ``permissions``, reads in ``selectors``. What they do
own is the stream protocol (README "Realtime"): after ``since`` arrives (query string or first
message) they send every stored event after it, then live ones, dropping what was already sent
and reading a gap back from the database, so a client sees each event once, in order.
"""

import asyncio
import hashlib
import json
import logging
from collections import deque
from enum import IntEnum
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from hitlproject.parsing import loads, whole_number

from . import selectors
from .conf import setting
from .delivery import uses_relay
from .groups import APPROVAL_EVENT_PREFIX, APPROVALS, run_group
from .messages import approval_frame, event_frame, presence_frame
from .permissions import visibility
from .relay import relay

log = logging.getLogger(__name__)

# Seconds a subscription to the channel layer may take before the socket is closed (4503).
LAYER_TIMEOUT = 5.0


class CloseCode(IntEnum):
    """Why the server closed. Daphne (autobahn) only lets an application send 1000 or 3000-4999,
    so every refusal uses the 4000 range, modelled on HTTP statuses."""

    BAD_REQUEST = 4400  # malformed JSON, a binary frame, a ``since`` that is not an int >= 0
    UNAUTHENTICATED = 4401
    FORBIDDEN = 4403
    UNKNOWN_RUN = 4404
    MESSAGE_TOO_BIG = 4413
    LAYER_UNAVAILABLE = 4503  # the channel layer failed; reconnect with since


class BadSince(ValueError):
    pass


def parse_since(value: Any) -> int:
    """``since`` from the query string (ASCII digits) or a message (a JSON integer, or such
    digits as a string). Anything else, 2.9, Infinity or 1e400 included, is not an integer
    >= 0 and closes the socket with 4400 (``int()`` truncated the first and overflowed on the
    others)."""
    since = whole_number(value)
    if since is None:
        raise BadSince(value)
    return since


class StreamConsumer(AsyncWebsocketConsumer):
    """One ordered stream of frames with a numeric cursor, resumable with ``since``."""

    # The last cursor value sent; None until the client has said where to start.
    cursor: int | None = None

    async def connect(self) -> None:
        self.closing = False
        self.subscribed: list[str] = []
        # Accept first: a refusal before the handshake completes reaches the client as a bare
        # HTTP 403, without the close code that says why.
        await self.accept()
        self.user = self.scope.get("user")
        if self.user is None or not self.user.is_authenticated:
            return await self.refuse(CloseCode.UNAUTHENTICATED)
        refusal = await self.authorize()
        if refusal is not None:
            return await self.refuse(refusal)
        query = parse_qs(self.scope.get("query_string", b"").decode("latin1"))
        self.announce = query.get("presence", [""])[-1] == "1"
        try:
            since = parse_since(query["since"][-1]) if "since" in query else None
        except BadSince:
            return await self.refuse(CloseCode.BAD_REQUEST)
        if uses_relay():
            # Before joining and before the catch-up query: see OutboxRelay.ensure_running.
            await relay.ensure_running()
        try:
            for group in self.stream_groups():
                # Bounded: right after a Redis restart a call on a stale pooled connection can
                # stall; the client is better off reconnecting than waiting on a silent socket.
                await asyncio.wait_for(
                    self.channel_layer.group_add(group, self.channel_name), LAYER_TIMEOUT
                )
                self.subscribed.append(group)
        except Exception:
            log.warning("Could not join %s; closing so the client reconnects", group, exc_info=True)
            return await self.refuse(CloseCode.LAYER_UNAVAILABLE)
        await self.joined()
        if since is not None:
            await self.start(since)

    async def refuse(self, code: CloseCode) -> None:
        self.closing = True
        await self.close(code=int(code))

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.closing:
            return
        if text_data is None:
            return await self.refuse(CloseCode.BAD_REQUEST)
        if len(text_data.encode()) > setting("HITL_REALTIME_MAX_MESSAGE_BYTES"):
            return await self.refuse(CloseCode.MESSAGE_TOO_BIG)
        try:
            # Nesting deep enough for a RecursionError fits in the size limit (2,048 levels).
            message = loads(text_data)
        except ValueError:
            return await self.refuse(CloseCode.BAD_REQUEST)
        if not isinstance(message, dict):
            return await self.refuse(CloseCode.BAD_REQUEST)
        if "since" in message:
            if self.cursor is None:  # later ones are ignored: the stream has its position
                try:
                    since = parse_since(message["since"])
                except BadSince:
                    return await self.refuse(CloseCode.BAD_REQUEST)
                await self.start(since)
        elif message.get("type") == "ping":
            await self.send_frame({"type": "pong", "seq": None, "run": None, "data": {}})

    async def disconnect(self, code: int) -> None:
        if not self.subscribed:
            return
        try:
            await self.leaving()
            for group in self.subscribed:
                await self.channel_layer.group_discard(group, self.channel_name)
        except Exception:  # layer unreachable: memberships expire on their own
            pass

    # --- the stream -------------------------------------------------------------------------

    async def start(self, since: int) -> None:
        self.cursor = since
        await self.catch_up()

    async def catch_up(self) -> None:
        """Send everything stored after the cursor. Live events that arrived meanwhile are
        still queued in the channel layer; ``run_event`` drops those already sent here."""
        page_size = setting("HITL_REALTIME_CATCH_UP_PAGE")
        while True:
            rows = await database_sync_to_async(self.fetch_after)(self.cursor)
            for row in rows:
                await self.send_event(row["id"], event_frame(row))
                if self.closing:  # refused while sending (RunConsumer.send_event)
                    return
            if len(rows) < page_size:
                return

    async def run_event(self, message: dict[str, Any]) -> None:
        """A committed event from the channel layer (publisher or relay)."""
        if self.cursor is None or self.closing:
            # Not started: the catch-up that starts the stream reads this event from the DB.
            return
        await self.live_event(message["id"], message["event"])

    async def run_events(self, message: dict[str, Any]) -> None:
        """Several committed events of this group, in order (``messages.batch_message``)."""
        for item in message["events"]:
            await self.run_event(item)

    async def send_frame(self, frame: dict[str, Any]) -> None:
        frame.setdefault("ts", None)
        await self.send(text_data=json.dumps(frame, separators=(",", ":")))

    # --- per stream -------------------------------------------------------------------------

    async def authorize(self) -> CloseCode | None:
        raise NotImplementedError

    def stream_groups(self) -> list[str]:
        raise NotImplementedError

    def fetch_after(self, cursor: int) -> list[dict[str, Any]]:
        raise NotImplementedError

    async def send_event(self, event_id: int, frame: dict[str, Any]) -> None:
        raise NotImplementedError

    async def live_event(self, event_id: int, frame: dict[str, Any]) -> None:
        raise NotImplementedError

    async def joined(self) -> None:
        pass

    async def leaving(self) -> None:
        pass


class RunConsumer(StreamConsumer):
    """Events of one run, cursor = the run's gapless ``seq``; plus presence of its viewers."""

    # Access was last granted when the run's events reached this seq (``run_access``).
    verified_seq: int = 0

    async def authorize(self) -> CloseCode | None:
        self.run_id = self.scope["url_route"]["kwargs"]["run_id"]
        # Viewers this client was told about (presence.join), by channel name.
        self._present: set[str] = set()
        return await self.check_access()

    async def check_access(self) -> CloseCode | None:
        access, self.verified_seq = await database_sync_to_async(selectors.run_access)(
            self.user, self.run_id
        )
        if access is selectors.Access.MISSING:
            return CloseCode.UNKNOWN_RUN
        if access is selectors.Access.FORBIDDEN:
            return CloseCode.FORBIDDEN
        return None

    def stream_groups(self) -> list[str]:
        return [run_group(self.run_id)]

    def fetch_after(self, cursor: int) -> list[dict[str, Any]]:
        return selectors.run_events_after(self.run_id, cursor)

    async def send_event(self, event_id: int, frame: dict[str, Any]) -> None:
        # Access is checked at connect, but a reassignment or a delegation can take a reviewer
        # off the run while the socket stays open; each comes with an approval event, so the
        # first one committed after the last check asks again (other events cost nothing).
        if frame["seq"] > self.verified_seq and frame["type"].startswith(APPROVAL_EVENT_PREFIX):
            refusal = await self.check_access()
            if refusal is not None:
                return await self.refuse(refusal)
        await self.send_frame(frame)
        self.cursor = frame["seq"]

    async def live_event(self, event_id: int, frame: dict[str, Any]) -> None:
        if frame["seq"] <= self.cursor:
            return  # already sent by the catch-up, or delivered twice
        if frame["seq"] == self.cursor + 1:
            return await self.send_event(event_id, frame)
        # A gap: the layer dropped something (at-most-once, a full buffer, a publish that
        # failed). Sequences of a run commit in order, so the database has the missing ones.
        await self.catch_up()

    # --- presence: "Alice is reviewing" ------------------------------------------------------
    # Kept in the channel layer only: a newcomer that asked to be shown (``?presence=1``, the
    # review page) announces itself to the run's group, every shown viewer there answers it
    # directly, and leaving is announced on disconnect. Everyone watching receives presence;
    # only shown viewers send it, so 500 dashboards on one run cost no presence traffic.

    def _me(self) -> dict[str, Any]:
        return {
            "type": "presence.join",
            "conn": self.channel_name,
            "user": {
                "id": self.user.pk,
                "username": self.user.get_username(),
                "name": (getattr(self.user, "get_full_name", lambda: "")() or "").strip()
                or self.user.get_username(),
            },
        }

    async def joined(self) -> None:
        if self.announce:
            await self.channel_layer.group_send(run_group(self.run_id), self._me())

    async def leaving(self) -> None:
        if self.announce:
            await self.channel_layer.group_send(
                run_group(self.run_id), {**self._me(), "type": "presence.leave"}
            )

    async def presence_join(self, message: dict[str, Any]) -> None:
        if message["conn"] == self.channel_name or self.closing:
            return
        await self._tell_joined(message)
        if self.announce:
            await self.channel_layer.send(message["conn"], {**self._me(), "type": "presence.here"})

    async def presence_here(self, message: dict[str, Any]) -> None:
        if not self.closing:
            await self._tell_joined(message)

    async def presence_leave(self, message: dict[str, Any]) -> None:
        if message["conn"] != self.channel_name and not self.closing:
            self._present.discard(message["conn"])
            await self._tell("presence.leave", message)

    async def _tell_joined(self, message: dict[str, Any]) -> None:
        # Two viewers connecting at the same moment can each hear the other both ways (the
        # other's announcement and its reply to ours): tell the client once.
        if message["conn"] in self._present:
            return
        self._present.add(message["conn"])
        await self._tell("presence.join", message)

    async def _tell(self, kind: str, message: dict[str, Any]) -> None:
        # Channel names address a consumer directly; clients get an opaque stand-in.
        conn = hashlib.sha256(message["conn"].encode()).hexdigest()[:16]
        await self.send_frame(presence_frame(kind, self.run_id, conn, message["user"]))


class ApprovalQueueConsumer(StreamConsumer):
    """``approval.*`` events of every run the user may see in the approval queue.

    The cursor is the RunEvent primary key (one sequence across runs), sent as ``seq``; the
    run's own sequence is ``run_seq``.

    Primary keys are handed out at INSERT and transactions commit in any order, so an event can
    arrive live after one with a higher id (two decisions on different requests committing out
    of order). Below the cursor therefore does not mean already sent: the consumer remembers
    the ids it sent recently and forwards anything else. A repeat costs the page one extra
    refresh; a drop would leave it stale.
    """

    REMEMBER = 1024

    async def authorize(self) -> CloseCode | None:
        self.sees_all = await database_sync_to_async(visibility().sees_all_approvals)(self.user)
        self.sent: deque[int] = deque(maxlen=self.REMEMBER)
        self.sent_ids: set[int] = set()
        return None

    def stream_groups(self) -> list[str]:
        return [APPROVALS]

    def fetch_after(self, cursor: int) -> list[dict[str, Any]]:
        return selectors.approval_events_after(self.user, cursor)

    async def send_event(self, event_id: int, frame: dict[str, Any]) -> None:
        await self.send_frame(approval_frame(event_id, frame))
        self.cursor = max(self.cursor, event_id)
        if len(self.sent) == self.REMEMBER:
            self.sent_ids.discard(self.sent[0])
        self.sent.append(event_id)
        self.sent_ids.add(event_id)

    async def live_event(self, event_id: int, frame: dict[str, Any]) -> None:
        if event_id in self.sent_ids:
            return
        if not self.sees_all and not await database_sync_to_async(selectors.approval_event_visible)(
            self.user, event_id
        ):
            return
        await self.send_event(event_id, frame)
