"""Odd input on the reviewer screens (review page, admin queue): Unicode digits, ids beyond a
bigint, JSON nested deeper than Python recurses, ids that are not ids, NUL bytes. Each gets a
form error, a message or an ignored filter; never a 500 and never a half-applied change."""

import pytest
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.urls import reverse

from approvals.models import ApprovalRequest, ApprovalStatus, DecisionRecord
from approvals.review.forms import schema_form
from workflows import start
from workflows.models import WaitKind, WaitStatus
from workflows.testing import run_until_idle

from .test_admin_queue import CHANGELIST, bulk_post, request_for, staff
from .test_review_page import answer_url

pytestmark = pytest.mark.django_db

# Nested deeper than json.loads can recurse: a RecursionError, not a JSONDecodeError.
DEEP = "[" * 100_000 + "]" * 100_000
# Parses, but the diff and the pages could not show it (a 500 on every later visit).
PARSES_DEEP = "[" * 900 + "]" * 900
TOO_DEEP = "Nested too deeply: at most 100 levels"
HUGE_ID = "9" * 23


def messages_of(response):
    return [str(m) for m in get_messages(response.wsgi_request)]


def listed(response):
    return [row.title for row in response.context["cl"].result_list]


# --- bulk decisions -------------------------------------------------------------------------


@pytest.mark.parametrize("stage", ["\u00b2", HUGE_ID, "-1", "two"])
def test_a_bad_stage_in_a_bulk_approval_decides_nothing(client, people, stage):
    first, second = request_for(people, title="first"), request_for(people, title="second")
    client.force_login(staff(people.ann))
    post = bulk_post([first, second], "approve_selected", post="yes")
    post[f"stage-{first.pk}"] = str(first.current_stage_id)
    post[f"stage-{second.pk}"] = stage
    response = client.post(f"{CHANGELIST}?queue=all", post)

    # The confirmation page again, with why, and nothing decided: not the first either.
    assert response.status_code == 200
    assert [a.title for a, _ in response.context["chosen"]] == ["first", "second"]
    assert any(
        "Nothing was decided: the stage sent for second is not a stage id" in text
        for text in messages_of(response)
    )
    assert set(ApprovalRequest.objects.values_list("status", flat=True)) == {ApprovalStatus.PENDING}
    assert not DecisionRecord.objects.filter(action="approve").exists()

    # Confirming the page as shown (its own stage fields) decides both.
    again = bulk_post([first, second], "approve_selected", post="yes")
    for approval in (first, second):
        again[f"stage-{approval.pk}"] = str(approval.current_stage_id)
    assert client.post(f"{CHANGELIST}?queue=all", again).status_code == 302
    assert set(ApprovalRequest.objects.values_list("status", flat=True)) == {
        ApprovalStatus.APPROVED
    }


def test_a_bad_stage_in_a_bulk_rejection_keeps_the_reason(client, people):
    approval = request_for(people, title="first")
    client.force_login(staff(people.ann))
    post = bulk_post([approval], "reject_selected", post="yes", reason="over budget")
    post[f"stage-{approval.pk}"] = "\u00b2"
    response = client.post(f"{CHANGELIST}?queue=all", post)
    assert response.status_code == 200 and "over budget" in response.content.decode()
    assert ApprovalRequest.objects.get(pk=approval.pk).status == ApprovalStatus.PENDING


@pytest.mark.parametrize("selected", [["nope"], ["nope", "ALL"], ["1"]])
def test_an_action_on_an_id_that_is_not_one_changes_nothing(client, people, selected):
    approval = request_for(people)
    client.force_login(staff(people.ann))
    response = client.post(
        CHANGELIST,
        {"action": "approve_selected", "post": "yes", "_selected_action": [*selected, approval.pk]},
        follow=True,
    )
    assert response.status_code == 200
    assert any("Nothing was changed" in text for text in messages_of(response))
    assert ApprovalRequest.objects.get(pk=approval.pk).status == ApprovalStatus.PENDING


# --- list filters ---------------------------------------------------------------------------


@pytest.mark.parametrize("assignee", ["\u00b2", "\u0663", HUGE_ID, "-1"])
def test_an_assignee_that_is_not_a_user_id_is_ignored(client, people, assignee):
    request_for(people, title="for reviewers")
    client.force_login(staff(people.ann))
    response = client.get(CHANGELIST, {"queue": "all", "assignee": assignee})
    assert response.status_code == 200 and listed(response) == ["for reviewers"]
    # A real id still filters.
    response = client.get(CHANGELIST, {"queue": "all", "assignee": people.fay.pk})
    assert listed(response) == []


@pytest.mark.parametrize("name", ["workflow", "stage"])
def test_a_name_filter_with_a_nul_byte_lists_nothing(client, people, name):
    # PostgreSQL text cannot hold NUL: psycopg refused to send the query (a 500).
    request_for(people)
    client.force_login(staff(people.ann))
    response = client.get(CHANGELIST, {"queue": "all", name: "a\x00b"})
    assert response.status_code == 200 and listed(response) == []


# --- deeply nested JSON ---------------------------------------------------------------------


@pytest.mark.parametrize("value", [DEEP, PARSES_DEEP], ids=["recursion", "900-levels"])
def test_a_deeply_nested_edit_is_a_form_error(client, people, value):
    approval = request_for(people, editable=True)
    client.force_login(staff(people.ann))
    for url in (
        reverse("review:decide", args=[approval.pk]),
        reverse("admin:approvals_approvalrequest_decide", args=[approval.pk]),
    ):
        response = client.post(url, {"action": "edit-confirm", "value": value})
        assert response.status_code == 400
        assert "The edited value did not come through" in response.content.decode()
    assert ApprovalRequest.objects.get(pk=approval.pk).status == ApprovalStatus.PENDING
    assert client.get(reverse("review:approval", args=[approval.pk])).status_code == 200


@pytest.mark.parametrize("value", [DEEP, PARSES_DEEP])
def test_a_deeply_nested_edit_preview_is_a_form_error(client, people, value):
    # An array schema is edited as one JSON text area.
    approval = request_for(people, editable=True, schema={"type": "array"}, payload=[1])
    client.force_login(people.ann)
    response = client.post(
        reverse("review:decide", args=[approval.pk]),
        {"action": "edit-preview", "edit-value": value},
    )
    assert response.status_code == 400 and TOO_DEEP in response.content.decode()


@pytest.mark.parametrize("value", [DEEP, PARSES_DEEP])
def test_a_deeply_nested_answer_is_a_form_error(client, people, value):
    run = start("review-page-raw-input", {}, created_by=people.ann)
    run_until_idle()
    wait = run.waits.get(kind=WaitKind.INPUT)
    client.force_login(people.ann)
    prefix = f"input-{wait.pk.hex[:8]}"
    response = client.post(answer_url(run, wait), {f"{prefix}-value": value})
    assert response.status_code == 400 and TOO_DEEP in response.content.decode()
    wait.refresh_from_db()
    assert wait.status == WaitStatus.OPEN
    # 100 levels is an answer like any other, and the run's page shows it.
    response = client.post(answer_url(run, wait), {f"{prefix}-value": "[" * 100 + "]" * 100})
    assert response.status_code == 302
    assert client.get(reverse("review:run", args=[run.pk])).status_code == 200


def test_a_deeply_nested_property_is_a_form_error():
    schema = {"type": "object", "properties": {"tags": {"type": "array"}}}
    form = schema_form(schema, {"tags": DEEP})
    assert not form.is_valid() and TOO_DEEP in form.errors["tags"][0]
    assert "[[[" in form.as_div()  # shown back as typed


# --- prompt buttons -------------------------------------------------------------------------


@pytest.mark.parametrize("button", ["\u00b2", "\u0661", HUGE_ID, "2", ""])
def test_a_button_that_is_not_one_of_the_prompt_is_a_400(client, people, button):
    run = start("upstash-approval", {"user_id": "u-1", "action": "export"}, created_by=people.ann)
    run_until_idle()
    people.ann.user_permissions.add(Permission.objects.get(codename="send_event"))
    client.force_login(type(people.ann).objects.get(pk=people.ann.pk))
    wait = run.waits.get(kind=WaitKind.EVENT)
    response = client.post(reverse("review:prompt", args=[run.pk, wait.pk]), {"button": button})
    assert response.status_code == 400 and "Unknown button." in response.content.decode()
    wait.refresh_from_db()
    assert wait.status == WaitStatus.OPEN


RUNS = reverse("admin:workflows_workflowrun_changelist")


@pytest.mark.parametrize(
    ("url", "params"),
    [
        (CHANGELIST, {"q": "a\x00b"}),
        (CHANGELIST, {"q": "a\x00b", "queue": "all"}),
        (CHANGELIST, {"workflow": "a\x00b"}),
        (CHANGELIST, {"stage": "a\x00b"}),
        (RUNS, {"q": "a\x00b"}),
        (RUNS, {"workflow_name": "a\x00b"}),
    ],
)
def test_nul_bytes_in_list_parameters_are_no_500(client, people, url, params):
    request_for(people)
    client.force_login(staff(people.ann, "view_workflowrun"))
    response = client.get(url, params)
    assert response.status_code == 200
    if "q" not in params:  # a name with NUL cannot be stored, so nothing has it
        assert list(response.context["cl"].result_list) == []
