"""Approval errors reach REST clients as the project's one error shape."""

from approvals.errors import ApprovalConflict, ApprovalNotAllowed, InvalidDecision
from hitlproject.api.errors import exception_handler


def test_errors_map_to_http_statuses():
    conflict = exception_handler(ApprovalConflict("already approved by ann", decided_by="ann"), {})
    assert (conflict.status_code, conflict.data["code"]) == (409, "conflict")
    assert conflict.data["message"] == "already approved by ann"
    refused = exception_handler(ApprovalNotAllowed("four-eyes", rule="own_request"), {})
    assert (refused.status_code, refused.data["code"]) == (403, "not_allowed")
    invalid = exception_handler(
        InvalidDecision("A reason is required.", {"comment": ["A reason is required."]}), {}
    )
    assert invalid.status_code == 400
    assert invalid.data["fields"] == {"comment": ["A reason is required."]}
