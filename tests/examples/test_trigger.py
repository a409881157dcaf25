"""Trigger.dev (seed 002): validated payload, durable 5 s generation, content.approved with a
1 hour timeout, reject -> revise -> re-approve, and a revision cap."""

from datetime import timedelta

import pytest

from examples.models import Effect
from workflows import clock, notify, start
from workflows.errors import InvalidInput
from workflows.models import RunStatus, WaitPoint, WaitStatus
from workflows.testing import run_until_idle

pytestmark = pytest.mark.django_db

WORKFLOW = "trigger-content-approval"


def generate(run):
    """Let the durable 5 s "generation" pass; the run then waits for a verdict."""
    run_until_idle()
    run.refresh_from_db()
    assert run.status == RunStatus.WAITING
    assert run.waits.get(status=WaitStatus.OPEN).kind == "sleep"
    clock.travel(timedelta(seconds=5))
    run_until_idle()
    run.refresh_from_db()
    return run


def open_wait(run) -> WaitPoint:
    return run.waits.get(status=WaitStatus.OPEN)


def test_payload_is_validated_before_anything_starts():
    with pytest.raises(InvalidInput) as error:
        start(WORKFLOW, {"topic": "", "draft_id": "not a slug!"})
    assert set(error.value.errors) == {"topic", "draft_id"}


def test_rejected_draft_is_revised_and_published_on_the_second_approval():
    run = generate(start(WORKFLOW, {"topic": "Durable workflows", "draft_id": "blog-post-123"}))
    wait = open_wait(run)
    assert (wait.key, wait.event_id) == ("content.approved", "content-approval-blog-post-123")
    assert wait.deadline - wait.created_at == pytest.approx(timedelta(hours=1), abs=timedelta(1))

    notify("content-approval-blog-post-123", {"approved": False, "reason": "Too long"})
    run_until_idle()
    assert open_wait(run).event_id == "content-revision-blog-post-123"
    assert not Effect.objects.exists()

    notify("content-revision-blog-post-123", {"notes": "shorter"})
    run = generate(run)
    assert open_wait(run).event_id == "content-approval-blog-post-123"
    notify("content-approval-blog-post-123", {"approved": True})
    run_until_idle()
    run.refresh_from_db()

    assert run.status == RunStatus.COMPLETED
    assert run.result["published"] is True
    assert run.result["revision"] == 1
    post = Effect.objects.get(kind="publish")
    assert post.target == "blog-post-123"
    assert post.data["text"] == "A post about Durable workflows. Revised for: shorter."


def test_revision_cap_stops_the_loop():
    run = generate(start(WORKFLOW, {"topic": "Pricing", "draft_id": "faq", "max_revisions": 1}))
    notify("content-approval-faq", {"approved": False, "reason": "Wrong prices"})
    run_until_idle()
    notify("content-revision-faq", {"notes": "new prices"})
    run = generate(run)
    notify("content-approval-faq", {"approved": False, "reason": "Still wrong"})
    run_until_idle()
    run.refresh_from_db()

    assert run.status == RunStatus.COMPLETED
    assert run.result == {
        "published": False,
        "reason": "rejected after 1 revisions (the cap)",
        "revisions": 1,
    }
    assert not Effect.objects.exists()


def test_unanswered_draft_times_out_after_an_hour():
    run = generate(start(WORKFLOW, {"topic": "Later", "draft_id": "late"}))
    clock.travel(timedelta(minutes=61))
    run_until_idle()
    run.refresh_from_db()
    assert run.result == {"published": False, "reason": "approval timed out", "revisions": 0}
