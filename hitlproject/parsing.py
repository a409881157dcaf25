"""Reading numbers and JSON from untrusted text without letting odd input become a 500.

``str.isdigit()`` is true for digits ``int()`` refuses ("²", "①"), and an id of 30 digits
overflows every integer column; ``json.loads`` raises ``RecursionError`` (not a ``ValueError``)
for input nested a few thousand levels deep. Every parser of request input goes through here.
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
