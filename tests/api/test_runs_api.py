"""The runs, workflows, input-request and event endpoints."""

from datetime import timedelta

import pytest
from rest_framework.test import APIClient

from tests.workflows import flows
from workflows import clock
from workflows.models import RunStatus, WaitPoint, WorkflowRun
from workflows.testing import run_until_idle

pytestmark = pytest.mark.django_db


def start(api, workflow, data=None, **extra):
    return api.post(
        "/api/v1/runs/", {"workflow": workflow, "input": data or {}, **extra}, format="json"
    )


def test_workflows_list_shows_input_schemas(api):
    response = api.get("/api/v1/workflows/")
    assert response.status_code == 200
    typed = next(w for w in response.json() if w["name"] == "typed")
    assert typed["input_schema"]["required"] == ["order_id", "amount"]
    order_id = typed["input_schema"]["properties"]["order_id"]
    assert (order_id["type"], order_id["minimum"]) == ("integer", 1)
    assert api.get("/api/v1/workflows/typed/").json()["version"] == 1
    assert api.get("/api/v1/workflows/versioned/").json()["versions"] == [1, 2]
    missing = api.get("/api/v1/workflows/nope/")
    assert missing.status_code == 404 and "Unknown workflow 'nope'" in missing.json()["message"]


def test_start_then_read_a_run(api, integrator):
    response = start(api, "typed", {"order_id": 5, "amount": "12.5"})
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["status"] == "pending" and body["input"] == {"order_id": 5, "amount": "12.50"}
    assert WorkflowRun.objects.get(pk=body["id"]).created_by == integrator
    run_until_idle()
    detail = api.get(f"/api/v1/runs/{body['id']}/").json()
    assert detail["status"] == "completed"
    assert detail["result"] == {"order_id": 5, "amount": "12.50"}


def test_start_with_an_idempotency_key_returns_the_same_run(api):
    first = start(api, "sleeper", {"seconds": 5}, idempotency_key="job-1")
    again = start(api, "sleeper", {"seconds": 5}, idempotency_key="job-1")
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    assert WorkflowRun.objects.count() == 1


def test_bad_input_is_400_with_field_errors_and_creates_nothing(api):
    response = start(api, "typed", {"order_id": "x"})
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid_input"
    assert set(body["fields"]) == {"order_id", "amount"}
    unknown = start(api, "nope")
    assert unknown.status_code == 400 and unknown.json()["code"] == "unknown_workflow"
    malformed = api.post("/api/v1/runs/", "{not json", content_type="application/json")
    assert malformed.status_code == 400 and "JSON parse error" in malformed.json()["message"]
    missing = api.post("/api/v1/runs/", {}, format="json")
    assert missing.status_code == 400 and "workflow" in missing.json()["fields"]
    assert WorkflowRun.objects.count() == 0


def test_starting_needs_the_add_permission_and_authentication(db, other_api):
    from tests.api.conftest import make_user, token_client

    reader = token_client(make_user("reader"))
    response = start(reader, "sleeper", {"seconds": 1})
    assert response.status_code == 403
    assert "add_workflowrun" in response.json()["message"]
    anonymous = APIClient().get("/api/v1/runs/")
    assert anonymous.status_code == 401 and anonymous["WWW-Authenticate"] == "Token"
    bad_token = APIClient(HTTP_AUTHORIZATION="Token not-a-token").get("/api/v1/runs/")
    assert bad_token.status_code == 401 and bad_token.json()["code"] == "authentication_failed"
    assert WorkflowRun.objects.count() == 0


def test_users_see_only_their_runs_and_managers_see_all(api, other_api, manager_api):
    mine = start(api, "sleeper", {"seconds": 5}).json()["id"]
    theirs = start(other_api, "sleeper", {"seconds": 5}).json()["id"]
    assert [r["id"] for r in api.get("/api/v1/runs/").json()["results"]] == [mine]
    assert api.get(f"/api/v1/runs/{theirs}/").status_code == 404
    seen = {r["id"] for r in manager_api.get("/api/v1/runs/").json()["results"]}
    assert seen == {mine, theirs}


def test_run_list_filters(api):
    waiting = start(api, "sleeper", {"seconds": 60}).json()["id"]
    asking = start(api, "ask", {}).json()["id"]
    done = start(api, "typed", {"order_id": 1, "amount": "1"}).json()["id"]
    run_until_idle()

    def ids(query):
        response = api.get(f"/api/v1/runs/?{query}")
        assert response.status_code == 200, response.json()
        listed = [r["id"] for r in response.json()["results"]]
        assert len(listed) == len(set(listed)), listed  # each run once (no DISTINCT needed)
        return set(listed)

    assert ids("status=waiting") == {waiting, asking}
    assert ids("status=waiting&status=completed") == {waiting, asking, done}
    assert ids("status=completed") == {done}
    assert ids("workflow=ask") == {asking}
    assert ids("waiting_kind=sleep") == {waiting}
    assert ids("waiting_kind=input") == {asking}
    future = (clock.now() + timedelta(days=1)).isoformat().replace("+00:00", "Z")
    assert ids(f"created_before={future}") == {waiting, asking, done}
    assert ids(f"created_after={future}") == set()
    # An offset PostgreSQL cannot store still filters correctly (converted to UTC).
    assert ids("created_after=2007-10-26T00%3A32%3A02-16%3A16") == {waiting, asking, done}
    bad = api.get("/api/v1/runs/?status=sleeping")
    assert bad.status_code == 400 and "status" in bad.json()["fields"]
    listed = api.get("/api/v1/runs/?status=waiting&workflow=sleeper").json()["results"][0]
    assert listed["waiting_for"]["kind"] == "sleep" and listed["waiting_for"]["deadline"]


def test_run_list_is_cursor_paginated(api):
    for _ in range(3):
        start(api, "sleeper", {"seconds": 5})
    page = api.get("/api/v1/runs/?page_size=2").json()
    assert len(page["results"]) == 2 and page["next"]
    rest = api.get(page["next"]).json()
    assert len(rest["results"]) == 1 and rest["next"] is None


def test_cancel_and_the_refusals_around_it(api, other_api):
    run_id = start(api, "sleeper", {"seconds": 60}).json()["id"]
    run_until_idle()
    assert other_api.post(f"/api/v1/runs/{run_id}/cancel/").status_code == 404
    response = api.post(
        f"/api/v1/runs/{run_id}/cancel/", {"reason": "no longer needed"}, format="json"
    )
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    again = api.post(f"/api/v1/runs/{run_id}/cancel/")
    assert again.status_code == 409
    assert again.json() == {
        "code": "invalid_transition",
        "message": f"Cannot cancel run {run_id}: it is cancelled.",
    }


def test_retry_a_failed_run(api):
    flows.failures_left["api"] = 1
    run_id = start(api, "fails-then-fixed", {"key": "api"}).json()["id"]
    run_until_idle()
    assert api.get(f"/api/v1/runs/{run_id}/").json()["status"] == "failed"
    response = api.post(f"/api/v1/runs/{run_id}/retry/")
    assert response.status_code == 200 and response.json()["status"] == "pending"
    run_until_idle()
    assert api.get(f"/api/v1/runs/{run_id}/").json()["status"] == "completed"
    assert api.post(f"/api/v1/runs/{run_id}/retry/").status_code == 409


def test_run_events_since(api):
    run_id = start(api, "counter", {"tag": "ev"}).json()["id"]
    run_until_idle()
    events = api.get(f"/api/v1/runs/{run_id}/events/").json()
    assert [e["type"] for e in events][:2] == ["run.started", "step.finished"]
    later = api.get(f"/api/v1/runs/{run_id}/events/?since=2").json()
    assert [e["seq"] for e in later] == [e["seq"] for e in events if e["seq"] > 2]


def test_events_endpoint_resumes_or_stores(api, other_api):
    run_id = start(api, "event-timeout", {"event_id": "order-9"}).json()["id"]
    run_until_idle()
    assert (
        other_api.post("/api/v1/events/", {"event_id": "order-9"}, format="json").status_code == 403
    )
    early = api.post("/api/v1/events/", {"event_id": "not-yet", "data": {"x": 1}}, format="json")
    assert early.json() == {"event_id": "not-yet", "resumed": 0, "stored": True}
    response = api.post(
        "/api/v1/events/", {"event_id": "order-9", "data": {"ok": True}}, format="json"
    )
    assert response.json() == {"event_id": "order-9", "resumed": 1, "stored": False}
    run_until_idle()
    assert api.get(f"/api/v1/runs/{run_id}/").json()["result"] == {
        "payload": {"ok": True},
        "timed_out": False,
    }
    blank = api.post("/api/v1/events/", {"event_id": ""}, format="json")
    assert blank.status_code == 400 and "event_id" in blank.json()["fields"]


def test_input_requests_list_and_answer(api, other_api):
    run_id = start(api, "ask", {"draft": 2}).json()["id"]
    run_until_idle()
    listing = api.get("/api/v1/input-requests/?status=open").json()["results"]
    assert len(listing) == 1
    request = listing[0]
    assert request["prompt"] == "Approve the draft?" and request["metadata"] == {"draft": 2}
    assert other_api.get("/api/v1/input-requests/").json()["results"] == []
    url = f"/api/v1/input-requests/{request['id']}/answer/"
    assert other_api.post(url, {"data": {"approved": True}}, format="json").status_code == 404

    bad = api.post(url, {"data": {"approved": "yes"}}, format="json")
    assert bad.status_code == 400 and "approved" in bad.json()["fields"]
    assert WaitPoint.objects.get(pk=request["id"]).status == "open"

    ok = api.post(url, {"data": {"approved": True}}, format="json")
    assert ok.status_code == 200 and ok.json()["status"] == "resolved"
    assert api.post(url, {"data": {"approved": False}}, format="json").status_code == 409
    run_until_idle()
    assert WorkflowRun.objects.get(pk=run_id).status == RunStatus.COMPLETED


def test_upstash_flow_over_http_alone(api):
    """Start, see it waiting with its event id, notify, see it completed (the Upstash seed)."""
    run_id = start(api, "event-timeout", {"event_id": "approval-42"}).json()["id"]
    run_until_idle()  # the worker
    waiting = api.get(f"/api/v1/runs/{run_id}/").json()
    assert waiting["status"] == "waiting"
    assert waiting["waiting_for"]["event_id"] == "approval-42"
    api.post(
        "/api/v1/events/", {"event_id": "approval-42", "data": {"approved": True}}, format="json"
    )
    run_until_idle()
    done = api.get(f"/api/v1/runs/{run_id}/").json()
    assert done["status"] == "completed"
    assert done["result"] == {"payload": {"approved": True}, "timed_out": False}
