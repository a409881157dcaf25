"""The review page (/review/): queue, request page and its decision forms, run page with input
forms generated from a JSON Schema and prompt buttons, permissions on every read and write."""

import json

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from approvals.models import ApprovalRequest, ApprovalStatus, DecisionRecord
from approvals.review.forms import initial_for, schema_form
from approvals.review.selectors import open_inputs_for
from workflows import start, workflow
from workflows.models import RunStatus, WaitKind, WaitStatus
from workflows.testing import run_until_idle

from .conftest import make_user

pytestmark = pytest.mark.django_db

CODE_SCHEMA = {
    "type": "object",
    "required": ["code", "budget"],
    "properties": {
        "code": {"type": "string", "pattern": "^[A-Z]{3}$", "maxLength": 3},
        "budget": {"type": "integer", "minimum": 0, "maximum": 5000},
    },
}

ANSWER_SCHEMA = {
    "type": "object",
    "required": ["approved", "amount"],
    "properties": {
        "approved": {"type": "boolean", "title": "Approved"},
        "amount": {"type": "number", "minimum": 0, "description": "In euros."},
        "channel": {"enum": ["email", "phone"]},
        "note": {"type": "string"},
    },
}


@workflow("review-page-input")
def review_page_input(ctx, data):
    answer = ctx.input_request(
        "confirm",
        prompt="Confirm the refund?",
        schema=ANSWER_SCHEMA,
        metadata={"order": 7},
    )
    ctx.step("after", lambda: "done")
    return {"answer": answer.data, "by": answer.responded_by}


@workflow("review-page-raw-input")
def review_page_raw_input(ctx, data):
    answer = ctx.input_request("anything", prompt="Any JSON value")
    return {"answer": answer.data}


def request_for(people, **data):
    data.setdefault("requester", people.requester.username)
    run = start("approvals-simple", data)
    run_until_idle()
    return ApprovalRequest.objects.get(run=run)


def decide_url(approval):
    return reverse("review:decide", args=[approval.pk])


def page_url(approval):
    return reverse("review:approval", args=[approval.pk])


def test_every_page_needs_a_signed_in_user(client, people):
    approval = request_for(people)
    for url in [
        reverse("review:queue"),
        page_url(approval),
        reverse("review:run", args=[approval.run_id]),
    ]:
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("review:login"))
    response = client.post(decide_url(approval), {"action": "approve"})
    assert response.status_code == 302 and "login" in response["Location"]
    assert ApprovalRequest.objects.get(pk=approval.pk).status == ApprovalStatus.PENDING


def test_a_reviewer_who_is_not_staff_signs_in_on_the_review_page(client, people):
    people.ann.set_password("s3cret-pass")
    people.ann.save()
    assert not people.ann.is_staff
    response = client.post(
        reverse("review:login"),
        {"username": "ann", "password": "s3cret-pass", "next": "/review/"},
    )
    assert response.status_code == 302 and response["Location"] == "/review/"
    assert client.get("/review/").status_code == 200


def test_the_queue_shows_what_waits_for_the_user_and_no_one_else(client, people):
    mine = request_for(people, title="Refund for order 7")
    request_for(people, title="Finance only", groups=["finance"])
    client.force_login(people.ann)
    page = client.get(reverse("review:queue")).content.decode()
    assert "Refund for order 7" in page and page_url(mine) in page
    assert "Finance only" not in page
    client.force_login(people.requester)  # their own request is not in their queue
    assert "Refund for order 7" not in client.get(reverse("review:queue")).content.decode()


def test_the_queue_starts_its_live_stream_at_the_newest_event(client, people):
    request_for(people)
    client.force_login(people.ann)
    page = client.get(reverse("review:queue")).content.decode()
    from workflows.models import RunEvent

    newest = RunEvent.objects.order_by("-pk").first().pk
    assert f'data-live-socket="/ws/approvals/" data-live-since="{newest}"' in page


def test_an_unknown_scope_falls_back_to_all(client, people):
    request_for(people, title="Visible anyway")
    client.force_login(people.ann)
    response = client.get(reverse("review:queue"), {"scope": "nonsense", "page": "x"})
    assert response.status_code == 200 and "Visible anyway" in response.content.decode()


def test_the_request_page_shows_payload_progress_stages_and_forms(client, people):
    approval = request_for(people, title="Laptop", payload={"amount": 1200, "item": "laptop"})
    client.force_login(people.ann)
    page = client.get(page_url(approval)).content.decode()
    assert "Laptop" in page and "&quot;amount&quot;: 1200" in page
    assert "review waiting 0 of 1" in page
    assert "group reviewers" in page
    # Labelled fields: the reason of a reject is required in the browser too.
    assert '<label for="id_reject-comment"' in page
    assert 'name="reject-comment"' in page and "required" in page
    assert 'id="run-timeline"' in page and "approval.created" in page


def test_approve_decides_through_the_service_and_the_run_finishes(client, people):
    approval = request_for(people)
    client.force_login(people.ann)
    response = client.post(
        decide_url(approval),
        {"action": "approve", "approve-comment": "fine"},
    )
    assert response.status_code == 302 and response["Location"] == page_url(approval)
    approval.refresh_from_db()
    assert approval.status == ApprovalStatus.APPROVED
    record = DecisionRecord.objects.get(request=approval, action="approve")
    assert (record.actor, record.channel, record.comment) == (people.ann, "review", "fine")
    run_until_idle()
    page = client.get(page_url(approval)).content.decode()
    assert "Approved: Simple request." in page
    assert "Workflow finished" in page and "Nothing left to decide" in page
    assert client.get(reverse("review:run", args=[approval.run_id])).status_code == 200


def test_reject_without_a_reason_is_refused_and_changes_nothing(client, people):
    approval = request_for(people)
    client.force_login(people.ann)
    response = client.post(decide_url(approval), {"action": "reject", "reject-comment": " "})
    assert response.status_code == 400
    assert "A reason is required to reject." in response.content.decode()
    approval.refresh_from_db()
    assert approval.status == ApprovalStatus.PENDING
    assert not DecisionRecord.objects.filter(request=approval, action="reject").exists()

    response = client.post(
        decide_url(approval),
        {"action": "reject", "reject-comment": "No receipt"},
    )
    assert response.status_code == 302
    approval.refresh_from_db()
    assert (approval.status, approval.reason) == (ApprovalStatus.REJECTED, "No receipt")


def test_people_who_may_not_see_a_request_get_404_for_reads_and_decisions(client, people):
    approval = request_for(people)
    client.force_login(people.outsider)
    assert client.get(page_url(approval)).status_code == 404
    assert client.get(reverse("review:run", args=[approval.run_id])).status_code == 404
    response = client.post(decide_url(approval), {"action": "approve"})
    assert response.status_code == 404
    assert ApprovalRequest.objects.get(pk=approval.pk).status == ApprovalStatus.PENDING


def test_a_rule_refusal_is_shown_with_403_and_nothing_changes(client, people):
    approval = request_for(people, requester="ann")  # an assignee asking for themselves
    client.force_login(people.ann)
    assert client.get(page_url(approval)).status_code == 200
    response = client.post(decide_url(approval), {"action": "approve"})
    assert response.status_code == 403
    assert "four-eyes" in response.content.decode()
    assert ApprovalRequest.objects.get(pk=approval.pk).status == ApprovalStatus.PENDING


def test_a_stale_page_gets_409_naming_who_decided_first(client, people):
    approval = request_for(people)
    stage_id = approval.current_stage_id
    client.force_login(people.ann)
    client.post(decide_url(approval), {"action": "approve"})
    client.force_login(people.bob)
    response = client.post(
        decide_url(approval),
        {"action": "approve", "approve-stage": stage_id},
    )
    assert response.status_code == 409
    assert "already approved by ann" in response.content.decode()
    assert DecisionRecord.objects.filter(request=approval, action="approve").count() == 1


def test_an_unknown_action_is_a_400_not_a_500(client, people):
    approval = request_for(people)
    client.force_login(people.ann)
    response = client.post(decide_url(approval), {"action": "explode"})
    assert response.status_code == 400 and "Unknown action." in response.content.decode()


def test_edit_previews_the_diff_then_approves_the_changed_value(client, people):
    approval = request_for(
        people, editable=True, schema=CODE_SCHEMA, payload={"code": "ABC", "budget": 1000}
    )
    client.force_login(people.ann)
    page = client.get(page_url(approval)).content.decode()
    assert 'name="edit-budget"' in page and 'value="1000"' in page

    preview = client.post(
        decide_url(approval), {"action": "edit-preview", "edit-code": "ABC", "edit-budget": "1500"}
    )
    assert preview.status_code == 200
    body = preview.content.decode()
    assert "Your changes" in body and "<del>1000</del>" in body and "<ins>1500</ins>" in body
    approval.refresh_from_db()
    assert approval.value == {"code": "ABC", "budget": 1000}  # a preview decides nothing

    confirm = client.post(
        decide_url(approval),
        {
            "action": "edit-confirm",
            "value": json.dumps({"code": "ABC", "budget": 1500}),
            "stage": approval.current_stage_id,
            "comment": "budget cut",
        },
    )
    assert confirm.status_code == 302
    approval.refresh_from_db()
    assert approval.status == ApprovalStatus.APPROVED
    assert (approval.payload, approval.value) == (
        {"code": "ABC", "budget": 1000},
        {"code": "ABC", "budget": 1500},
    )
    assert DecisionRecord.objects.get(request=approval, action="edit").channel == "review"
    page = client.get(page_url(approval)).content.decode()
    assert "Changed from the original" in page and "<ins>1500</ins>" in page


def test_an_edit_the_schema_refuses_shows_why_on_the_field(client, people):
    approval = request_for(
        people, editable=True, schema=CODE_SCHEMA, payload={"code": "ABC", "budget": 1000}
    )
    client.force_login(people.ann)
    too_big = client.post(
        decide_url(approval), {"action": "edit-preview", "edit-code": "ABC", "edit-budget": "9000"}
    )
    assert too_big.status_code == 400
    assert "less than or equal to 5000" in too_big.content.decode()
    nothing = client.post(
        decide_url(approval), {"action": "edit-preview", "edit-code": "ABC", "edit-budget": "1000"}
    )
    assert "Nothing changed" in nothing.content.decode()
    # The pattern is checked by the service (the JSON Schema), on confirmation.
    refused = client.post(
        decide_url(approval),
        {"action": "edit-confirm", "value": json.dumps({"code": "abc", "budget": 10})},
    )
    assert refused.status_code == 400
    body = refused.content.decode()
    assert "does not match" in body and 'value="abc"' in body
    approval.refresh_from_db()
    assert approval.status == ApprovalStatus.PENDING and approval.value["code"] == "ABC"


def test_a_request_that_is_not_editable_refuses_an_edit(client, people):
    approval = request_for(people)
    client.force_login(people.ann)
    assert 'id="edit-form"' not in client.get(page_url(approval)).content.decode()
    response = client.post(
        decide_url(approval),
        {"action": "edit-confirm", "value": json.dumps({"amount": 1})},
    )
    assert response.status_code == 403 and "not editable" in response.content.decode()


def test_claim_and_release_from_the_request_page(client, people):
    approval = request_for(people)
    client.force_login(people.ann)
    assert client.post(decide_url(approval), {"action": "claim"}).status_code == 302
    approval.refresh_from_db()
    assert approval.current_stage.claimed_by == people.ann
    client.force_login(people.bob)
    response = client.post(decide_url(approval), {"action": "approve"})
    assert response.status_code == 403 and "claimed by ann" in response.content.decode()
    client.force_login(people.ann)
    assert client.post(decide_url(approval), {"action": "unclaim"}).status_code == 302
    approval.refresh_from_db()
    assert approval.current_stage.claimed_by is None


# --- input requests: forms from the JSON Schema ---------------------------------------------


def input_run(user):
    run = start("review-page-input", {}, created_by=user)
    run_until_idle()
    wait = run.waits.get(kind=WaitKind.INPUT)
    return run, wait


def answer_url(run, wait):
    return reverse("review:answer", args=[run.pk, wait.pk])


def test_an_input_request_gets_a_labelled_form_built_from_its_schema(client, people):
    run, wait = input_run(people.ann)
    client.force_login(people.ann)
    queue = client.get(reverse("review:queue")).content.decode()
    assert "Confirm the refund?" in queue
    page = client.get(reverse("review:run", args=[run.pk])).content.decode()
    prefix = f"input-{wait.pk.hex[:8]}"
    assert "Confirm the refund?" in page
    # A required yes/no is a pair of radio buttons, a number a number input, an enum a select.
    assert f'name="{prefix}-approved" value="true"' in page and 'type="radio"' in page
    assert f'<input type="number" name="{prefix}-amount"' in page and "In euros." in page
    assert f'<select name="{prefix}-channel"' in page
    assert 'value="&quot;email&quot;"' in page
    assert f'<label for="id_{prefix}-note"' in page


def test_a_bad_answer_is_refused_field_by_field_and_the_wait_stays_open(client, people):
    run, wait = input_run(people.ann)
    prefix = f"input-{wait.pk.hex[:8]}"
    client.force_login(people.ann)
    response = client.post(answer_url(run, wait), {f"{prefix}-amount": "-3"})
    assert response.status_code == 400
    body = response.content.decode()
    assert "This field is required." in body and "greater than or equal to 0" in body
    wait.refresh_from_db()
    assert wait.status == WaitStatus.OPEN


@pytest.mark.parametrize("text", ["NaN", "[Infinity]", '{"a": "\\u0000"}'])
def test_json_that_cannot_be_stored_is_refused_with_the_form(client, people, text):
    # Django's JSONField reads NaN, Infinity and "\u0000"; PostgreSQL's jsonb holds none.
    run = start("review-page-raw-input", {}, created_by=people.ann)
    run_until_idle()
    wait = run.waits.get(kind=WaitKind.INPUT)
    client.force_login(people.ann)
    prefix = f"input-{wait.pk.hex[:8]}"
    response = client.post(answer_url(run, wait), {f"{prefix}-value": text})
    assert response.status_code == 400
    assert "cannot be stored as JSON" in response.content.decode()
    wait.refresh_from_db()
    assert wait.status == WaitStatus.OPEN


def test_a_good_answer_resumes_the_run_until_it_finishes(client, people):
    run, wait = input_run(people.ann)
    prefix = f"input-{wait.pk.hex[:8]}"
    client.force_login(people.ann)
    response = client.post(
        answer_url(run, wait),
        {
            f"{prefix}-approved": "true",
            f"{prefix}-amount": "19.5",
            f"{prefix}-channel": '"phone"',
            f"{prefix}-note": "",
        },
    )
    assert response.status_code == 302
    wait.refresh_from_db()
    assert wait.resolution == {"approved": True, "amount": 19.5, "channel": "phone"}
    assert wait.resolved_by == people.ann
    run_until_idle()
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED and run.result["by"] == people.ann.pk
    page = client.get(reverse("review:run", args=[run.pk])).content.decode()
    assert "Workflow finished" in page and "input.resolved" in page
    again = client.post(
        answer_url(run, wait), {f"{prefix}-approved": "false", f"{prefix}-amount": "1"}
    )
    assert again.status_code == 409 and "already answered" in again.content.decode()


def test_only_people_allowed_to_answer_get_the_form(client, people):
    run, wait = input_run(people.requester)
    client.force_login(people.outsider)
    assert client.get(reverse("review:run", args=[run.pk])).status_code == 404
    assert client.post(answer_url(run, wait), {}).status_code == 404
    answerer = make_user("answerer", perms=["answer_any_input"])  # may answer, cannot see it
    client.force_login(answerer)
    assert client.get(reverse("review:run", args=[run.pk])).status_code == 404
    assert "Confirm the refund?" not in client.get(reverse("review:queue")).content.decode()
    client.force_login(people.requester)  # started it: may answer
    assert "Send answer" in client.get(reverse("review:run", args=[run.pk])).content.decode()


def test_open_inputs_are_listed_for_who_may_answer_them_on_a_run_they_may_open(people):
    _run, wait = input_run(people.requester)
    assert list(open_inputs_for(people.requester)) == [wait]  # started the run
    manager = make_user("manager", perms=["manage_any_run"])  # manages every run
    assert list(open_inputs_for(manager)) == [wait]
    answerer = make_user("answerer", perms=["answer_any_input"])  # cannot open this run
    assert list(open_inputs_for(answerer)) == []
    assert list(open_inputs_for(people.outsider)) == []


def test_prompt_buttons_send_their_event_for_people_allowed_to(client, people):
    """The Upstash example's page: a message, Approve / Reject, then "Workflow finished"."""
    run = start("upstash-approval", {"user_id": "u-1", "action": "export"}, created_by=people.ann)
    run_until_idle()
    wait = run.waits.get(kind=WaitKind.EVENT)
    url = reverse("review:prompt", args=[run.pk, wait.pk])
    client.force_login(people.ann)
    page = client.get(reverse("review:run", args=[run.pk])).content.decode()
    assert "Waiting for approval to process action: export" in page
    assert "Approve</button>" not in page  # may not send events
    assert client.post(url, {"button": "0"}).status_code == 403

    people.ann.user_permissions.add(Permission.objects.get(codename="send_event"))
    client.force_login(people.ann)
    page = client.get(reverse("review:run", args=[run.pk])).content.decode()
    assert "Approve</button>" in page and "Reject</button>" in page
    assert client.post(url, {"button": "-1"}).status_code == 400
    assert client.post(url, {"button": "0"}).status_code == 302
    run_until_idle()
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED and run.result["approved"] is True
    assert "Workflow finished" in client.get(reverse("review:run", args=[run.pk])).content.decode()
    assert client.post(url, {"button": "1"}).status_code == 409


def test_schema_forms_round_trip_initial_values():
    form = schema_form(ANSWER_SCHEMA, initial=initial_for(ANSWER_SCHEMA, {"approved": False}))
    assert form["approved"].value() == "false"
    raw = schema_form(None, {"value": "[1, 2]"})
    assert raw.is_valid() and raw.data_value() == [1, 2]
    bad = schema_form({"type": "array"}, {"value": "{not json"})
    assert not bad.is_valid() and "value" in bad.errors


def test_the_queue_costs_the_same_queries_for_3_and_30_requests(client, people):
    client.force_login(people.ann)

    def queries():
        with CaptureQueriesContext(connection) as captured:
            assert client.get(reverse("review:queue")).status_code == 200
        return len(captured)

    for _ in range(3):
        request_for(people)
    few = queries()
    for _ in range(27):
        request_for(people)
    assert queries() == few
