"""Blazen (seed 003): input requests with request id, prompt and metadata, typed answers,
several per run; durable step results survive a worker restart, process memory does not."""

import pytest

from examples import blazen
from workflows import answer_input, start
from workflows.errors import InvalidInput
from workflows.models import RunStatus, WaitStatus
from workflows.testing import run_until_idle

pytestmark = pytest.mark.django_db

DOCUMENT = {"title": "Q3 report", "sections": ["outline", "summary"]}


def open_request(run):
    run_until_idle()
    run.refresh_from_db()
    assert run.status == RunStatus.WAITING
    return run.waits.get(status=WaitStatus.OPEN)


def test_several_typed_input_requests_in_one_run(accounts):
    run = start("blazen-document-review", DOCUMENT)
    first = open_request(run)
    assert first.event_id == f"review-outline-{run.pk}"
    assert first.request["prompt"] == "Approve the outline of 'Q3 report'?"
    assert first.request["metadata"] == {"section": "outline", "words": 9, "title": "Q3 report"}
    with pytest.raises(InvalidInput):  # the response is typed: {approved: bool, note: str}
        answer_input(first.event_id, {"approved": "yes"})

    answer_input(first.event_id, {"approved": True, "note": "looks good"}, accounts["reviewer"])
    second = open_request(run)
    assert second.event_id == f"review-summary-{run.pk}"
    answer_input(second.event_id, {"approved": False, "note": "too vague"}, accounts["manager"])
    run_until_idle()
    run.refresh_from_db()

    assert run.status == RunStatus.COMPLETED
    assert run.result["approved"] is False
    assert run.result["answers"] == [
        {
            "request_id": first.event_id,
            "section": "outline",
            "approved": True,
            "note": "looks good",
            "responded_by": accounts["reviewer"].pk,
        },
        {
            "request_id": second.event_id,
            "section": "summary",
            "approved": False,
            "note": "too vague",
            "responded_by": accounts["manager"].pk,
        },
    ]
    # No restart: the same process still had its session values.
    assert run.result["ephemeral"] == {"cached_sections": ["outline", "summary"]}


def test_worker_restart_keeps_durable_state_and_loses_ephemeral_values():
    run = start("blazen-document-review", DOCUMENT)
    answer_input(open_request(run).event_id, {"approved": True})
    request = open_request(run)
    assert set(blazen.SESSION[str(run.pk)]) == {"outline", "summary"}

    # What a worker restart does to module-level memory; nothing else is touched.
    blazen.SESSION.clear()
    answer_input(request.event_id, {"approved": True})
    run_until_idle()
    run.refresh_from_db()

    assert run.status == RunStatus.COMPLETED
    assert run.result["durable"] == {
        "drafts": [{"section": "outline", "words": 9}, {"section": "summary", "words": 9}]
    }
    assert run.result["ephemeral"] == {"cached_sections": []}
    assert run.result["approved"] is True
