"""Keys in batches: one statement never names more than ``SIZE`` of them."""

from collections.abc import Iterable, Iterator
from typing import Any

# Well under SQLite's limit on query parameters (999 before SQLite 3.32).
SIZE = 500


def batches(keys: Iterable[Any]) -> Iterator[list[Any]]:
    ids = list(keys)
    for start in range(0, len(ids), SIZE):
        yield ids[start : start + SIZE]
