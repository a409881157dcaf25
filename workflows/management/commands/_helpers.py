"""Shared parsing and formatting for the ``hitl_*`` management commands."""

import json
from datetime import datetime
from typing import Any

from django.core.management.base import CommandError
from django.utils import timezone

from workflows.errors import InvalidInput, WorkflowError


def parse_json(text: str | None, *, argument: str) -> Any:
    """Parse a JSON command-line argument; on failure say which argument and where it breaks."""
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        # Point at the offending character so quoting mistakes of the shell are easy to spot.
        line = text.splitlines()[exc.lineno - 1] if text.strip() else text
        pointer = " " * (exc.colno - 1) + "^"
        raise CommandError(
            f"{argument} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}:\n"
            f"  {line}\n  {pointer}"
        ) from None


def workflow_error(exc: WorkflowError) -> CommandError:
    """A ``CommandError`` for an engine error, listing field errors of invalid input."""
    message = str(exc)
    if isinstance(exc, InvalidInput) and exc.errors and exc.errors != {"detail": [message]}:
        message += "\n" + "\n".join(format_errors(exc.errors))
    return CommandError(message)


def format_errors(errors: Any, prefix: str = "") -> list[str]:
    """Flatten DRF / JSON Schema style errors into ``  field: message`` lines."""
    if isinstance(errors, dict):
        lines = []
        for name, value in errors.items():
            lines.extend(format_errors(value, f"{prefix}.{name}" if prefix else str(name)))
        return lines
    if isinstance(errors, list):
        if all(isinstance(item, str) for item in errors):
            return [f"  {prefix or 'input'}: {' '.join(str(item) for item in errors)}"]
        lines = []
        for index, value in enumerate(errors):
            if value:
                lines.extend(format_errors(value, f"{prefix}[{index}]"))
        return lines
    return [f"  {prefix or 'input'}: {errors}"]


def format_time(value: datetime | None, now: datetime) -> str:
    """``2025-01-31 14:05:00 UTC (in 2h 5m)``; empty for ``None``."""
    if value is None:
        return ""
    local = timezone.localtime(value)
    return f"{local:%Y-%m-%d %H:%M:%S %Z} ({relative(value, now)})"


def relative(value: datetime, now: datetime) -> str:
    seconds = int((value - now).total_seconds())
    future = seconds >= 0
    seconds = abs(seconds)
    if seconds < 60:
        amount = f"{seconds}s"
    elif seconds < 3600:
        amount = f"{seconds // 60}m"
    elif seconds < 86400:
        amount = f"{seconds // 3600}h {seconds % 3600 // 60}m"
    else:
        amount = f"{seconds // 86400}d {seconds % 86400 // 3600}h"
    return f"in {amount}" if future else f"{amount} ago"
