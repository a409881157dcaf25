"""Odd input an audit found answered with a 500: each is now a 4xx naming the problem, and
what it refuses changes nothing.

Unicode digits ("²" passes ``str.isdigit()``, then fails in ``int()``), datetimes that overflow
when converted to UTC, cursors with a bad position, JSON nested deeper than Python's json can
read or write, a timestamp header too large for float arithmetic, a multipart body whose raw
bytes are gone by the time the idempotency check wants them, and a webhook event id of the
wrong type.
"""

import base64
import json
import time
from urllib.parse import quote

import pytest
from django.contrib.auth.models import Group
from django.test import override_settings
from rest_framework.test import APIClient

import tests.approvals.flows  # noqa: F401  (registers approvals-simple)
from approvals.models import ApprovalRequest
from hitlproject.parsing import MAX_DEPTH
from tests.api.conftest import make_user, token_client
from workflows import start
from workflows.models import EventMessage, IdempotentRequest, RunStatus, WebhookReceipt
from workflows.registry import contains_nul
from workflows.testing import run_until_idle
from workflows.webhooks import sign

pytestmark = pytest.mark.django_db

SECRET = "odd-input-secret"
HOOK = "/api/v1/webhooks/inbound/"


def client(user) -> APIClient:
    api = token_client(user)
    api.raise_request_exception = False  # a 500 must show as a 500, not as an exception
    return api


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


@pytest.fixture
def approval(db):
    make_user("rita")
    ann = make_user("ann")
    ann.groups.add(Group.objects.get_or_create(name="reviewers")[0])
    run = start("approvals-simple", {"requester": "rita"}, created_by=ann)
    run_until_idle()
    return ann, run, ApprovalRequest.objects.get(run=run)


def hook(body: bytes, **headers) -> "APIClient":
    api = APIClient()
    api.raise_request_exception = False
    with override_settings(HITL_WEBHOOK_SECRETS=[SECRET]):
        return api.generic("POST", HOOK, body, content_type="application/json", **headers)


def signed(body: bytes):
    timestamp = str(int(time.time()))
    return hook(
        body,
        HTTP_X_HITL_TIMESTAMP=timestamp,
        HTTP_X_HITL_SIGNATURE=sign(SECRET, timestamp, body),
    )


# 1. A stage named by a Unicode digit.


def test_decide_with_a_unicode_digit_stage_is_400_naming_the_stage(approval):
    ann, _, request = approval
    response = client(ann).post(
        f"/api/v1/approvals/{request.pk}/decide/",
        {"action": "approve", "stage": "²"},
        format="json",
    )
    assert response.status_code == 400, response.content
    assert response.json()["message"] == "'Simple request' has no stage ².", response.json()
    assert response.json()["fields"] == {"stage": ["²"]}
    request.refresh_from_db()
    assert request.status == "pending"
    # A stage's id still names it.
    stage_id = str(request.stages.get().pk)
    by_id = client(ann).post(
        f"/api/v1/approvals/{request.pk}/decide/",
        {"action": "approve", "stage": stage_id},
        format="json",
    )
    assert by_id.status_code == 200, by_id.json()


def test_webhook_decide_with_a_unicode_digit_stage_is_400(approval):
    _, _, request = approval
    payload = {
        "action": "approval.decide",
        "approval": str(request.pk),
        "decision": "approve",
        "actor": "ann",
        "stage": "²",
    }
    response = signed(json.dumps(payload).encode())
    assert response.status_code == 400, response.content
    assert response.json()["fields"] == {"stage": ["²"]}
    assert not WebhookReceipt.objects.exists()


# 2. A group named by a Unicode digit.


def test_delegate_to_a_unicode_digit_group_is_400_no_group(approval):
    ann, _, request = approval
    response = client(ann).post(
        f"/api/v1/approvals/{request.pk}/delegate/", {"groups": ["²"]}, format="json"
    )
    assert response.status_code == 400, response.content
    assert response.json()["message"] == "There is no group '²'."
    assert response.json()["fields"] == {"groups": ["Unknown group '²'."]}
    # A group's id still names it.
    leads = Group.objects.create(name="leads")
    by_id = client(ann).post(
        f"/api/v1/approvals/{request.pk}/delegate/", {"groups": [str(leads.pk)]}, format="json"
    )
    assert by_id.status_code == 200, by_id.json()
    assert by_id.json()["stages"][0]["groups"] == ["leads"]


# 3. The event stream's since.


@pytest.mark.parametrize("since", ["%C2%B2", "abc", "-1", "1.5", "9" * 30])
def test_events_since_that_is_not_a_seq_is_400_naming_since(approval, since):
    ann, run, _ = approval
    response = client(ann).get(f"/api/v1/runs/{run.pk}/events/?since={since}")
    assert response.status_code == 400, response.content
    assert response.json()["fields"] == {"since": ["Must be a whole number (an event's seq) >= 0."]}


def test_events_without_since_are_all_of_them(approval):
    ann, run, _ = approval
    everything = client(ann).get(f"/api/v1/runs/{run.pk}/events/")
    assert everything.status_code == 200 and everything.json()
    assert client(ann).get(f"/api/v1/runs/{run.pk}/events/?since=0").json() == everything.json()


# 4. Dates that overflow in UTC.


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("created_after", "9999-12-31T23:59:59-10:00"),
        ("created_before", "0001-01-01T00:00:00%2B10:00"),
    ],
)
def test_a_created_filter_beyond_the_calendar_in_utc_is_400_naming_it(approval, field, value):
    ann, _, _ = approval
    response = client(ann).get(f"/api/v1/runs/?{field}={value}")
    assert response.status_code == 400, response.content
    assert response.json()["fields"] == {
        field: ["Outside the dates that can be stored: 0001-01-01 to 9999-12-31 in UTC."]
    }


# 5. Cursors that decode but hold no position.


@pytest.mark.parametrize("path", ["runs", "approvals", "input-requests"])
@pytest.mark.parametrize(
    "position", [b"p=garbage", b"p=9999-99-99", b"p=9999-12-31+23%3A59%3A59-10%3A00"]
)
def test_a_cursor_with_a_bad_position_is_400_invalid_cursor(approval, path, position):
    ann, _, _ = approval
    cursor = quote(base64.b64encode(position).decode())
    response = client(ann).get(f"/api/v1/{path}/?cursor={cursor}")
    assert response.status_code == 400, response.content
    assert response.json()["fields"] == {"cursor": ["Invalid cursor."]}


def test_a_cursor_position_with_any_offset_pages_in_utc(approval):
    # PostgreSQL refuses offsets beyond +-15:59; the position is compared in UTC.
    ann, run, _ = approval
    cursor = quote(base64.b64encode(b"p=2999-01-01+00%3A00%3A00-16%3A16").decode())
    response = client(ann).get(f"/api/v1/runs/?cursor={cursor}")
    assert response.status_code == 200, response.content
    assert [r["id"] for r in response.json()["results"]] == [str(run.pk)]


# 6. JSON nested too deeply in API bodies.


def test_a_json_body_nested_too_deeply_is_a_parse_error(db):
    user = make_user("integ", "workflows.send_event")
    body = b'{"event_id": "x", "data": ' + nested(100_000) + b"}"
    response = client(user).generic(
        "POST", "/api/v1/events/", body, content_type="application/json"
    )
    assert response.status_code == 400, response.content
    assert response.json() == {
        "code": "parse_error",
        "message": f"JSON parse error - JSON nested more than {MAX_DEPTH} levels deep",
    }
    assert not EventMessage.objects.exists()


def test_json_python_can_just_read_is_refused_before_it_overflows_later(db):
    # ~900 levels parse; resolving a wait with them overflowed deeper in the stack (a 500
    # with the run left waiting). The limit refuses them up front; 99 levels of data still go.
    user = make_user("integ", "workflows.send_event")
    run = start("event-timeout", {"event_id": "deep"}, created_by=user)
    run_until_idle()
    api = client(user)
    for depth in (900, MAX_DEPTH):
        body = b'{"event_id": "deep", "data": ' + nested(depth) + b"}"
        response = api.generic("POST", "/api/v1/events/", body, content_type="application/json")
        assert response.status_code == 400, (depth, response.content)
    body = b'{"event_id": "deep", "data": ' + nested(MAX_DEPTH - 1) + b"}"
    response = api.generic("POST", "/api/v1/events/", body, content_type="application/json")
    assert response.json() == {"event_id": "deep", "resumed": 1, "stored": False}
    run_until_idle()
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED


def test_a_form_field_nested_too_deeply_is_400_naming_it(db):
    user = make_user("integ", "workflows.add_workflowrun")
    body = b"workflow=sleeper&input=" + b"%5B" * 5000
    response = client(user).generic(
        "POST", "/api/v1/runs/", body, content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 400, response.content
    assert response.json()["fields"] == {
        "input": [f"Value must not be nested more than {MAX_DEPTH} levels deep."]
    }


# 7. JSON nested too deeply in webhooks.


def test_an_unsigned_webhook_nested_too_deeply_is_401(db):
    response = hook(nested(100_000))
    assert response.status_code == 401, response.content
    assert response.json()["code"] == "bad_signature"


def test_a_signed_webhook_nested_deeply_is_400_and_stores_nothing(db):
    body = b'{"action": "event.notify", "event_id": "x", "data": ' + nested(600) + b"}"
    response = signed(body)
    assert response.status_code == 400, response.content
    assert response.json()["message"] == (
        f"The webhook body is not valid JSON: JSON nested more than {MAX_DEPTH} levels deep"
    )
    assert not EventMessage.objects.exists() and not WebhookReceipt.objects.exists()


def test_contains_nul_walks_any_depth():
    # It recursed, and overflowed on a signed body a few hundred levels deep.
    def deep(leaf):
        for _ in range(10_000):
            leaf = [{"k": leaf}]
        return leaf

    assert contains_nul(deep("\x00")) and contains_nul(deep({"\x00": 1}))
    assert not contains_nul(deep("text"))


# 8. A timestamp too large for float arithmetic.


def test_a_huge_webhook_timestamp_is_401(db):
    response = hook(b"{}", HTTP_X_HITL_TIMESTAMP="1" + "0" * 400, HTTP_X_HITL_SIGNATURE="sha256=00")
    assert response.status_code == 401, response.content
    assert response.json() == {
        "code": "bad_signature",
        "message": "X-HITL-Timestamp must be Unix seconds.",
    }


# 9. Multipart bodies and Idempotency-Key.


def test_a_session_multipart_post_with_an_idempotency_key_is_replayed(db):
    # DRF's CSRF check reads request.POST, which consumes a multipart body's raw bytes.
    user = make_user("integ", "workflows.send_event")
    browser = APIClient(enforce_csrf_checks=True)
    browser.raise_request_exception = False
    browser.force_login(user)
    browser.cookies["csrftoken"] = "x" * 32

    def post(event_id: str):
        return browser.post(
            "/api/v1/events/",
            {"event_id": event_id},
            format="multipart",
            HTTP_X_CSRFTOKEN="x" * 32,
            HTTP_IDEMPOTENCY_KEY="k1",
        )

    first = post("ev-1")
    assert first.status_code == 200, first.content
    assert first.json() == {"event_id": "ev-1", "resumed": 0, "stored": True}
    again = post("ev-1")
    assert again.status_code == 200 and again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    other = post("ev-2")
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"
    assert list(EventMessage.objects.values_list("event_id", flat=True)) == ["ev-1"]


def test_a_multipart_repeat_with_another_boundary_is_the_same_request(db):
    # Clients pick a new random boundary for every multipart body.
    user = make_user("integ", "workflows.send_event")
    api = client(user)

    def post(boundary: str):
        body = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="event_id"\r\n\r\n'
            f"ev-1\r\n--{boundary}--\r\n"
        ).encode()
        return api.generic(
            "POST",
            "/api/v1/events/",
            body,
            content_type=f"multipart/form-data; boundary={boundary}",
            HTTP_IDEMPOTENCY_KEY="k2",
        )

    first, again = post("aaaa1111"), post("bbbb2222")
    assert (first.status_code, again.status_code) == (200, 200), again.content
    assert again.headers["Idempotent-Replayed"] == "true"
    assert EventMessage.objects.count() == 1 and IdempotentRequest.objects.count() == 1


# 10. A webhook event id that is not a string.


@pytest.mark.parametrize("event_id", [["a"], {"a": 1}, True])
def test_a_webhook_event_id_that_is_not_a_string_is_400(db, event_id):
    response = signed(json.dumps({"action": "event.notify", "event_id": event_id}).encode())
    assert response.status_code == 400, response.content
    assert response.json()["message"] == "event.notify: event_id: Not a valid string."
    assert response.json()["fields"] == {"event_id": ["Not a valid string."]}
    assert not EventMessage.objects.exists() and not WebhookReceipt.objects.exists()


# Found by schemathesis on the way: a POST to a malformed id matches no API route.


@pytest.mark.parametrize("path", ["runs/0.5/cancel/", "approvals/%C2%84/decide/"])
def test_a_post_to_no_api_route_is_a_json_404_not_a_csrf_page(db, path):
    api = APIClient(enforce_csrf_checks=True)
    response = api.post(f"/api/v1/{path}", {}, format="json", HTTP_AUTHORIZATION="Token nope")
    assert response.status_code == 404, response.content[:200]
    assert response.json()["code"] == "not_found"
