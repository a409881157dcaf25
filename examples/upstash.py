"""Port of the Upstash Workflow + Realtime seed (shared/seeds/000_0e543312082780f3.txt)."""

from datetime import timedelta

from rest_framework import serializers

from workflows import Context, workflow

APPROVAL_TIMEOUT = timedelta(minutes=5)


class UpstashInput(serializers.Serializer):
    user_id = serializers.CharField(max_length=100)
    action = serializers.CharField(max_length=200)


def initial_processing(user_id: str, action: str) -> dict:
    return {"preprocessed": True, "userId": user_id, "action": action, "requiresApproval": True}


def process_decision(status: str, user_id: str, action: str) -> dict:
    return {"status": status, "action": action, "userId": user_id}


@workflow("upstash-approval", input=UpstashInput)
def upstash_approval(ctx: Context, data: dict) -> dict:
    """Upstash's human-in-the-loop workflow (seed 000_0e543312082780f3.txt).

    An initial step, then a wait for ``approval-<run id>`` (5 minutes) while the live page
    shows "waiting for input" with Approve / Reject buttons, then the approved or rejected
    processing step, then "Workflow finished". Every change reaches ``/ws/runs/<id>/``:
    ``step.finished``, ``waiting-for-input`` (the page's message and buttons), ``run.waiting``,
    ``event.received`` (the seed's ``inputResolved``) and ``run.finished``. A button is
    ``notify(event_id, {"approved": true|false})``: ``manage.py hitl_notify`` or
    ``POST /api/v1/events/``.
    """
    user_id, action = data["user_id"], data["action"]
    ctx.step("initial-processing", initial_processing, user_id, action)

    event_id = f"approval-{ctx.run_id}"
    # What the page needs to render its waiting state; the buttons are the notify payloads.
    ctx.emit(
        "waiting-for-input",
        {
            "event_id": event_id,
            "message": f"Waiting for approval to process action: {action}",
            "buttons": [
                {"label": "Approve", "data": {"approved": True}},
                {"label": "Reject", "data": {"approved": False}},
            ],
        },
    )
    decision, timed_out = ctx.wait_for_event("wait-for-approval", event_id, APPROVAL_TIMEOUT)
    if timed_out:
        return {"success": False, "reason": "timeout"}

    approved = bool((decision or {}).get("approved"))
    status = "approved" if approved else "rejected"
    ctx.step(f"process-{status}", process_decision, status, user_id, action)
    return {"success": True, "approved": approved, "workflowRunId": ctx.run_id}
