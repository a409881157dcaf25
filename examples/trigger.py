"""Port of the Trigger.dev content-approval seed (shared/seeds/002_b9a479a5713da9ca.txt)."""

from datetime import timedelta

from rest_framework import serializers

from workflows import Context, workflow

from .outside import apply_effect, check_available

GENERATION_TIME = timedelta(seconds=5)
APPROVAL_TIMEOUT = timedelta(hours=1)
REVISION_TIMEOUT = timedelta(days=2)


class ContentInput(serializers.Serializer):
    topic = serializers.CharField(max_length=200)
    draft_id = serializers.SlugField(max_length=100)
    max_revisions = serializers.IntegerField(min_value=0, max_value=10, default=2)


def approval_event_id(draft_id: str) -> str:
    return f"content-approval-{draft_id}"


def revision_event_id(draft_id: str) -> str:
    return f"content-revision-{draft_id}"


def generate_draft(topic: str, revision: int, notes: str) -> dict:
    # Stand-in for the AI call; the durable sleep before it stands in for its duration.
    text = f"A post about {topic}."
    if notes:
        text += f" Revised for: {notes}."
    return {"revision": revision, "text": text}


def publish_content(ctx: Context, draft_id: str, draft: dict) -> dict:
    check_available("cms")
    return apply_effect(
        run_id=ctx.run_id,
        kind="publish",
        target=draft_id,
        data={"revision": draft["revision"], "text": draft["text"]},
        key=ctx.idempotency_key,
    )


@workflow("trigger-content-approval", input=ContentInput)
def trigger_content_approval(ctx: Context, data: dict) -> dict:
    """Trigger.dev's AI content approval (seed 002_b9a479a5713da9ca.txt).

    Validated payload (``topic``, ``draft_id``); a durable 5 s wait stands in for generation;
    then the run waits up to 1 hour for ``content.approved`` with id
    ``content-approval-<draft_id>`` (``{"approved": bool, "reason": str}``). Approved: the
    draft is published (a retried step). Rejected: it waits for
    ``content-revision-<draft_id>`` (``{"notes": str}``), regenerates and asks again, until
    ``max_revisions`` revisions were rejected too. ``manage.py hitl_runs`` shows what a run
    waits for and until when, like Trigger.dev's dashboard.
    """
    draft_id = data["draft_id"]
    notes = ""
    for revision in range(data["max_revisions"] + 1):
        # Names carry the revision: each round is a new, separately recorded part of the run.
        ctx.sleep(f"generate-{revision}", GENERATION_TIME)
        draft = ctx.step(f"draft-{revision}", generate_draft, data["topic"], revision, notes)
        ctx.emit("content.review-requested", {"event_id": approval_event_id(draft_id), **draft})
        verdict, timed_out = ctx.wait_for_event(
            "content.approved", approval_event_id(draft_id), APPROVAL_TIMEOUT
        )
        if timed_out:
            return {"published": False, "reason": "approval timed out", "revisions": revision}
        if verdict and verdict.get("approved"):
            published = ctx.step(
                "publish-content", publish_content, ctx, draft_id, draft, retries=3, backoff=5
            )
            return {"published": True, "revision": revision, "effect_id": published["effect_id"]}
        ctx.emit(
            "content.rejected", {"revision": revision, "reason": (verdict or {}).get("reason")}
        )
        if revision == data["max_revisions"]:
            break
        revised, timed_out = ctx.wait_for_event(
            "content.revision.completed", revision_event_id(draft_id), REVISION_TIMEOUT
        )
        if timed_out:
            return {"published": False, "reason": "no revision arrived", "revisions": revision}
        notes = (revised or {}).get("notes", "")
    return {
        "published": False,
        "reason": f"rejected after {data['max_revisions']} revisions (the cap)",
        "revisions": data["max_revisions"],
    }
