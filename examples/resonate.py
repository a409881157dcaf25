"""Port of Resonate's durable promises (shared/seeds/004_6f7de145e3e45877.txt)."""

import logging

from rest_framework import serializers

from approvals.conf import base_url
from workflows import Context, start, workflow
from workflows.models import WorkflowRun

log = logging.getLogger(__name__)

WORKFLOW = "resonate-promise"


class PromiseInput(serializers.Serializer):
    workflow_id = serializers.SlugField(max_length=100)


def promise_id_for(workflow_id: str) -> str:
    return f"{workflow_id}.blocking-promise"


def callback_for(promise_id: str) -> dict:
    """How a person or another process resolves the promise."""
    url = f"{base_url()}/api/v1/events/"
    body = f'{{"event_id": "{promise_id}", "data": "human_approval"}}'
    return {
        "promise_id": promise_id,
        "url": url,
        "curl": (
            f"curl -X POST {url} -H 'Authorization: Token <token>' "
            f"-H 'Content-Type: application/json' -d '{body}'"
        ),
        "cli": f"python manage.py hitl_notify {promise_id} --data '\"human_approval\"'",
    }


def send_email(workflow_id: str, promise_id: str) -> dict:
    # The seed's sendEmail prints the callback; a real one would mail it.
    callback = callback_for(promise_id)
    print(
        f"workflow {workflow_id} blocked, waiting on human interaction. Resolve it with\n"
        f"  {callback['cli']}\nor POST to {callback['url']} (signed in, or:)\n"
        f"  {callback['curl']}",
        flush=True,
    )
    return callback


def announce_unblocked(workflow_id: str, value) -> str:
    print(f"workflow {workflow_id} unblocked, promise resolved with {value!r}", flush=True)
    return "unblocked"


@workflow(WORKFLOW, input=PromiseInput)
def resonate_promise(ctx: Context, data: dict) -> dict:
    """Resonate's human-in-the-loop with a durable promise (seed 004_6f7de145e3e45877.txt).

    The promise is the event id ``<workflow_id>.blocking-promise``, stable and known to anyone
    who knows the workflow id. A step "emails" the callback (printed in the worker's log,
    recorded as the step's result and as a ``promise.created`` event): ``manage.py hitl_notify``
    or ``POST /api/v1/events/`` from any process resolves it. Start it with the workflow id as
    idempotency key (``start_promise_workflow``): starting the same id again returns the pending
    run. The run waits holding no worker, so a worker killed meanwhile loses nothing; any
    other worker continues it.
    """
    workflow_id = data["workflow_id"]
    promise_id = promise_id_for(workflow_id)
    callback = ctx.step("send-email", send_email, workflow_id, promise_id)
    ctx.emit("promise.created", callback)
    value, _ = ctx.wait_for_event("blocking-promise", promise_id)
    ctx.step("unblocked", announce_unblocked, workflow_id, value)
    return {"message": f"workflow {workflow_id} completed", "value": value}


def start_promise_workflow(workflow_id: str) -> WorkflowRun:
    """Start the workflow, or reconnect to the run already started with this id."""
    return start(WORKFLOW, {"workflow_id": workflow_id}, idempotency_key=workflow_id)
