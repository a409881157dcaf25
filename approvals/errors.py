"""Errors of the approvals app. All derive from ``workflows.errors.WorkflowError``.

``ApprovalNotAllowed`` (403) names the rule that refused in ``rule``; ``ApprovalConflict``
(409) says who decided first; ``InvalidDecision`` (400) is bad input (a reject without a reason,
an edit that does not match the schema).
"""

from typing import Any

from workflows.errors import InvalidInput, WorkflowError


class ApprovalError(WorkflowError):
    """Base class of the errors raised by the approvals app."""


class ApprovalNotFound(ApprovalError):
    """No approval request with that id."""


class ApprovalNotAllowed(ApprovalError):
    """A rule refused the action. ``rule`` is one of:

    ``not_assignee``, ``own_request`` (four-eyes), ``one_stage_per_person``,
    ``already_approved`` (counted once per stage), ``claimed_by_other``, ``not_editable``,
    ``not_claimer``, ``no_actor``.
    """

    def __init__(self, message: str, *, rule: str):
        super().__init__(message)
        self.rule = rule


class ApprovalConflict(ApprovalError):
    """The stage or request was already decided (or claimed) by someone else.

    Concurrent decisions on one stage: exactly one wins, every other gets this error.
    ``decided_by`` is the username of whoever got there first (None for the system).
    """

    def __init__(self, message: str, *, decided_by: str | None = None, status: str = ""):
        super().__init__(message)
        self.decided_by = decided_by
        self.status = status


class InvalidDecision(ApprovalError, InvalidInput):
    """The action's input is not acceptable; ``errors`` maps fields to messages."""

    def __init__(self, message: str, errors: Any = None):
        InvalidInput.__init__(self, message, errors=errors)


class AuditImmutable(ApprovalError):
    """Decision records are append-only: updating or deleting one is refused."""


class GateRejected(ApprovalError):
    """A gated call was not approved; ``decision`` says why. The call did not run."""

    def __init__(self, name: str, decision: Any):
        self.name, self.decision = name, decision
        who = f" by {decision.decided_by}" if decision.decided_by else ""
        reason = f": {decision.reason}" if decision.reason else ""
        super().__init__(f"Gate '{name}' was not approved ({decision.status}{who}){reason}")


class LinkInvalid(ApprovalError):
    """A signed decision link that is malformed or was tampered with."""


class LinkExpired(LinkInvalid):
    """A signed decision link past its expiry."""


class LinkUsed(LinkInvalid):
    """A signed decision link that was already used (links work once)."""
