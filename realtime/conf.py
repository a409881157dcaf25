"""Realtime settings with their defaults, read at call time so tests can override them."""

from typing import Any

from django.conf import settings

DEFAULTS: dict[str, Any] = {
    # "auto": the relay when the channel layer is in-memory (it cannot cross processes),
    # publishing after commit otherwise. "relay" or "publish" force one path.
    "HITL_REALTIME_DELIVERY": "auto",
    # How often the embedded relay looks for new run events (seconds).
    "HITL_REALTIME_RELAY_INTERVAL": 0.25,
    # How long the relay keeps looking for an id that was skipped (a transaction that took an
    # id but had not committed yet, on PostgreSQL) before deciding it was rolled back.
    "HITL_REALTIME_RELAY_HOLE_SECONDS": 30.0,
    # Upper bound on one send of queued events to the channel layer (seconds); also how long
    # an exiting process waits for its publish queue to drain.
    "HITL_REALTIME_PUBLISH_TIMEOUT": 1.0,
    # Events queued for publishing (up to this many, oldest dropped first); while the layer is
    # unreachable the queue is retried every HITL_REALTIME_PUBLISH_RETRY seconds, in order.
    "HITL_REALTIME_PUBLISH_BACKLOG": 10_000,
    "HITL_REALTIME_PUBLISH_RETRY": 2.0,
    # A publisher that sent less than this long ago (seconds) waits out the rest before its
    # next send, so that under load one send carries the events of several commits; an idle
    # one sends at once. At most this much latency added to a live event; 0 turns it off.
    "HITL_REALTIME_PUBLISH_COALESCE": 0.005,
    # The committing thread asks Redis whether anyone listens before it queues events (one
    # round trip); it waits at most this long (seconds), and after a failure it skips the
    # check (queueing everything) for HITL_REALTIME_PUBLISH_RETRY seconds.
    "HITL_REALTIME_CHECK_TIMEOUT": 0.25,
    # Largest text frame a client may send (bytes); larger ones close the socket (4413).
    "HITL_REALTIME_MAX_MESSAGE_BYTES": 4096,
    # Run events read per query during catch-up.
    "HITL_REALTIME_CATCH_UP_PAGE": 500,
    # "dotted.path.Class" deciding who sees which runs and approval events (see permissions).
    "HITL_REALTIME_VISIBILITY": "realtime.permissions.RunVisibility",
}


def setting(name: str) -> Any:
    return getattr(settings, name, DEFAULTS[name])
