"""Reading numbers and JSON from untrusted text without letting odd input become a 500.

``str.isdigit()`` is true for digits ``int()`` refuses ("²", "①"), and an id of 30 digits
overflows every integer column; ``json.loads`` raises ``RecursionError`` (not a ``ValueError``)
for input nested a few thousand levels deep. Every parser of request input goes through here.

``json`` reads and writes nested values recursively, one frame per level against Python's
limit of 1000 in all: a value that just parsed (~900 levels) still overflowed later, when a
resolved wait stored it or a page showed it from deeper in the stack. So request JSON is
refused beyond ``MAX_DEPTH`` levels (``parse_json``), which leaves the engine's stores, events
and pages (each wraps a value in a few levels more) far from that limit; no real document
comes near it.
"""

import json
import re
from typing import Any

# The largest value of a bigint column (PostgreSQL, SQLite): ids, offsets, sequence numbers.
MAX_BIGINT = 2**63 - 1

_ASCII_DIGITS = re.compile(r"[0-9]{1,19}")


def whole_number(value: Any, *, maximum: int = MAX_BIGINT) -> int | None:
    """``value`` as an int if it is one, or a string of ASCII digits, from 0 to ``maximum``;
    otherwise None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and _ASCII_DIGITS.fullmatch(value):
        number = int(value)
    else:
        return None
    return number if 0 <= number <= maximum else None


def loads(text: str | bytes, **kwargs: Any) -> Any:
    """``json.loads`` that reports input nested too deeply as a ``ValueError`` like any other
    malformed JSON (``json.JSONDecodeError`` is one too)."""
    try:
        return json.loads(text, **kwargs)
    except RecursionError as exc:
        raise ValueError("JSON nested too deeply") from exc


MAX_DEPTH = 100


class NestedTooDeeply(ValueError):
    def __init__(self) -> None:
        super().__init__(f"JSON nested more than {MAX_DEPTH} levels deep")


def parse_json(text: str | bytes, **kwargs: Any) -> Any:
    """``loads``, refusing a value nested more than ``MAX_DEPTH`` arrays and objects deep with
    ``NestedTooDeeply`` (a ``ValueError``, as for any malformed JSON)."""
    try:
        value = loads(text, **kwargs)
    except ValueError as exc:
        if isinstance(exc.__cause__, RecursionError):  # how loads reports nesting
            raise NestedTooDeeply() from None
        raise
    if nesting_depth(value) > MAX_DEPTH:
        raise NestedTooDeeply()
    return value


def nesting_depth(value: Any) -> int:
    """How many arrays and objects deep a JSON value goes (0 for a scalar); a loop, since
    recursion is what fails on deep values."""
    deepest = 0
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, depth)
        pending.extend((child, depth + 1) for child in children)
    return deepest
