"""What the request and run pages show, for the review page and the admin's change page."""

import json
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.http import HttpRequest

from workflows import selectors as run_selectors
from workflows.models import WorkflowRun
from workflows.permissions import can_send_events

from ..models import ApprovalRequest
from ..selectors import approval_diff, approval_history, approval_progress
from . import forms
from . import selectors as s


def approval_context(request: HttpRequest, approval: ApprovalRequest, outcome: Any) -> dict:
    bound = outcome.bound
    # Read again: after a refused decision the request may have moved on (often the reason).
    approval = s.approval_for(request.user, approval.pk) or approval
    run = WorkflowRun.objects.get(pk=approval.run_id)
    stage = approval.current_stage if approval.is_open else None
    stage_id = stage.pk if stage else None
    history = list(approval_history(approval))
    return {
        "approval": approval,
        "stage": stage,
        "stage_id": stage_id,
        "stages": sorted(approval.stages.all(), key=lambda st: st.order),
        "progress": approval_progress(approval),
        "history": history,
        # Changes whenever something is recorded: the live region's version.
        "state_version": f"{approval.status}:{len(history)}",
        "diff": approval_diff(approval),
        "value_json": as_json(approval.value),
        "schema_json": as_json(approval.schema) if approval.schema else "",
        "error": outcome.error,
        "approve_form": bound.get("approve")
        or forms.DecisionForm(action="approve", initial={"stage": stage_id}),
        "reject_form": bound.get("reject")
        or forms.DecisionForm(action="reject", initial={"stage": stage_id}),
        "edit_form": (bound.get("edit") or _edit_form(approval)) if approval.editable else None,
        "preview": outcome.preview,
        **run_context(request, run),
    }


def _edit_form(approval: ApprovalRequest) -> forms.SchemaForm:
    initial = forms.initial_for(approval.schema, approval.value)
    return forms.schema_form(approval.schema, prefix="edit", initial=initial)


def input_prefix(wait: Any) -> str:
    return f"input-{wait.pk.hex[:8]}"


def run_context(request: HttpRequest, run: WorkflowRun, *, bound: dict | None = None) -> dict:
    bound = bound or {}
    run.refresh_from_db()
    # The socket's cursor is read before everything else: an event committed after this read
    # is replayed to the page, which then renders again.
    live_since = run.event_seq
    waits = s.open_waits(request.user, run)
    for item in waits:
        if item.can_answer:
            item.form = bound.get(item.wait.pk) or forms.schema_form(
                item.wait.request.get("schema"), prefix=input_prefix(item.wait)
            )
            metadata = item.wait.request.get("metadata")
            item.metadata_json = as_json(metadata) if metadata else ""
    return {
        "run": run,
        "run_live_since": live_since,
        "run_outcome": s.run_outcome(run),
        "run_result_json": as_json(run.result) if run.result is not None else "",
        "timeline": run_selectors.run_timeline(run),
        "open_waits": waits,
        "waits_version": ",".join(str(item.wait.pk)[:8] for item in waits) or "none",
        "may_send_events": can_send_events(request.user),
    }


def as_json(value: Any) -> str:
    return json.dumps(value, cls=DjangoJSONEncoder, indent=2, ensure_ascii=False, sort_keys=True)
