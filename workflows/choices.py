"""Short-lived caching of filter choices (workflow names, open stage names, assignees).

Every admin changelist page lists them in its sidebar, and each is a ``DISTINCT`` over every run
or open stage: about 50 ms per page with 100,000 pending approvals (bench/README.md, Queue
pages). A list a few seconds stale is harmless: a filter works for any value, listed or not.
"""

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.cache import cache

PREFIX = "hitl:choices:"
_known: set[str] = set()


def cached_choices(name: str, compute: Callable[[], list[Any]]) -> list[Any]:
    """``compute()``, cached for ``HITL_FILTER_CHOICES_CACHE_SECONDS`` (0: not cached)."""
    timeout = settings.HITL_FILTER_CHOICES_CACHE_SECONDS
    if timeout <= 0:
        return compute()
    key = PREFIX + name
    _known.add(key)
    value = cache.get(key)
    if value is None:
        value = compute()
        cache.set(key, value, timeout)
    return value


def forget_choices() -> None:
    """Drop the cached lists (tests; after bulk changes an operator wants to see at once)."""
    cache.delete_many(list(_known))
