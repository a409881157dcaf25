"""Channels group names. One module, so producers (delivery, relay) and consumers agree.

Group names may only hold ASCII letters, digits, ``-``, ``_`` and ``.`` and must be shorter
than 100 characters (a Channels rule); a run's UUID fits.
"""

from typing import Any

# Every approval.* event of every run; each consumer filters per user before forwarding.
APPROVALS = "approvals"

APPROVAL_EVENT_PREFIX = "approval."


def run_group(run_id: Any) -> str:
    """Events and presence of one run."""
    return f"run.{run_id}"


def groups_for(event_type: str, run_id: Any) -> list[str]:
    """Where a committed run event is delivered."""
    groups = [run_group(run_id)]
    if event_type.startswith(APPROVAL_EVENT_PREFIX):
        groups.append(APPROVALS)
    return groups
