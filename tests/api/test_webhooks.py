"""Signed inbound webhooks: signature, time window, replays, and the actions behind them."""

import json
import time
from datetime import timedelta

import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from workflows import clock, start
from workflows.models import EventMessage, RunStatus, WebhookReceipt
from workflows.sweeper import sweep
from workflows.testing import run_until_idle
from workflows.webhooks import sign

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("webhook_secret")]

URL = "/api/v1/webhooks/inbound/"
SECRET = "s3cret-for-tests"


@pytest.fixture
def webhook_secret():
    with override_settings(HITL_WEBHOOK_SECRETS=["old-rotated-secret", SECRET]):
        yield


def send(payload, *, secret=SECRET, timestamp=None, body=None, signature=None):
    body = body if body is not None else json.dumps(payload).encode()
    timestamp = str(int(time.time()) if timestamp is None else timestamp)
    signature = signature or sign(secret, timestamp, body)
    return APIClient().generic(
        "POST",
        URL,
        body,
        content_type="application/json",
        HTTP_X_HITL_TIMESTAMP=timestamp,
        HTTP_X_HITL_SIGNATURE=signature,
    )


def test_signed_event_resumes_the_waiting_run():
    run = start("event-timeout", {"event_id": "invoice-1"})
    run_until_idle()
    response = send({"action": "event.notify", "event_id": "invoice-1", "data": {"paid": 1}})
    assert response.status_code == 200, response.json()
    assert response.json()["result"] == {"event_id": "invoice-1", "resumed": 1, "stored": False}
    run_until_idle()
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED and run.result["payload"] == {"paid": 1}


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_not_json_and_store_nothing(constant):
    # Python's json.loads reads them; stored in PostgreSQL's jsonb they were a 500.
    body = f'{{"action": "event.notify", "event_id": "x", "data": {{"n": {constant}}}}}'
    response = send(None, body=body.encode())
    assert response.status_code == 400
    assert f"{constant} is not a JSON value" in response.json()["message"]
    assert not EventMessage.objects.exists() and not WebhookReceipt.objects.exists()


def test_a_nul_character_anywhere_in_the_body_is_refused_and_stores_nothing():
    # Text columns and jsonb cannot hold one: it was a 500 from PostgreSQL.
    for payload in (
        {"action": "event.notify", "event_id": "x\x00y"},
        {"action": "approval.decide", "approval": "nope", "comment": "\x00"},
        {"action": "event.notify", "event_id": "x", "data": {"k\x00": 1}},
    ):
        response = send(payload)
        assert response.status_code == 400, payload
        assert "NUL character" in response.json()["message"]
    assert not EventMessage.objects.exists() and not WebhookReceipt.objects.exists()


def test_a_replayed_webhook_is_refused_and_acts_once():
    body = json.dumps({"action": "event.notify", "event_id": "later"}).encode()
    timestamp = str(int(time.time()))
    first = send(None, body=body, timestamp=timestamp)
    again = send(None, body=body, timestamp=timestamp)
    assert first.status_code == 200
    assert again.status_code == 409 and again.json()["code"] == "replayed"
    assert EventMessage.objects.filter(event_id="later").count() == 1


@pytest.mark.parametrize(
    "tamper", ["wrong-secret", "changed-body", "no-signature", "garbage", "non-ascii"]
)
def test_bad_signatures_are_refused_and_change_nothing(tamper):
    payload = {"action": "event.notify", "event_id": "x"}
    body = json.dumps(payload).encode()
    timestamp = str(int(time.time()))
    if tamper == "wrong-secret":
        response = send(payload, secret="guess")
    elif tamper == "changed-body":
        response = send(
            None,
            body=body.replace(b'"x"', b'"y"'),
            signature=sign(SECRET, timestamp, body),
            timestamp=timestamp,
        )
    elif tamper == "no-signature":
        response = APIClient().post(URL, payload, format="json")
    elif tamper == "non-ascii":  # found by tests/reliability/test_webhook_fuzz.py: was a 500
        response = send(payload, signature="sha256=é" + "0" * 63)
    else:
        response = send(payload, signature="sha256=" + "0" * 64)
    assert response.status_code == 401
    assert response.json()["code"] == "bad_signature"
    assert EventMessage.objects.count() == 0 and WebhookReceipt.objects.count() == 0


def test_a_timestamp_outside_five_minutes_is_refused():
    stale = int(time.time()) - 301
    response = send({"action": "event.notify", "event_id": "x"}, timestamp=stale)
    assert response.status_code == 401 and "300 seconds" in response.json()["message"]
    future = int(time.time()) + 301
    assert send({"action": "event.notify", "event_id": "x"}, timestamp=future).status_code == 401
    assert EventMessage.objects.count() == 0


def test_signed_but_invalid_bodies_are_400_and_leave_no_receipt():
    unknown = send({"action": "launch.rockets"})
    assert unknown.status_code == 400 and "event.notify" in unknown.json()["message"]
    not_json = send(None, body=b"{oops")
    assert not_json.status_code == 400 and "not valid JSON" in not_json.json()["message"]
    blank = send({"action": "event.notify", "event_id": ""})
    assert blank.status_code == 400
    assert WebhookReceipt.objects.count() == 0


def test_webhooks_are_off_without_a_secret():
    with override_settings(HITL_WEBHOOK_SECRETS=[]):
        response = send({"action": "event.notify", "event_id": "x"})
    assert response.status_code == 404


def test_old_receipts_are_pruned_by_the_sweeper():
    send({"action": "event.notify", "event_id": "p"})
    assert WebhookReceipt.objects.count() == 1
    clock.travel(timedelta(minutes=11))
    sweep()
    assert WebhookReceipt.objects.count() == 0
