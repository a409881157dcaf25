"""The engine's only source of "now", so tests can move time instead of sleeping."""

from datetime import datetime, timedelta

from django.utils import timezone

_offset = timedelta(0)


def now() -> datetime:
    return timezone.now() + _offset


def travel(delta: timedelta) -> None:
    """Move the clock forward by ``delta`` (tests only; affects this process)."""
    global _offset
    _offset += delta


def reset() -> None:
    global _offset
    _offset = timedelta(0)
