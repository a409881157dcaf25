"""Approvals over REST: visibility, filters, decide / claim / delegate, and the webhook."""

import json
import time
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.test import override_settings

import tests.approvals.flows  # noqa: F401  (registers approvals-simple, expense)
from approvals.models import ApprovalRequest, DecisionRecord
from tests.api.conftest import make_user, token_client
from workflows import clock, start
from workflows.models import RunStatus
from workflows.testing import run_until_idle
from workflows.webhooks import sign

pytestmark = pytest.mark.django_db


@pytest.fixture
def team(db):
    class Team:
        rita = make_user("rita")
        ann = make_user("ann")
        bob = make_user("bob")
        otto = make_user("otto")

    for user in (Team.ann, Team.bob):
        user.groups.add(Group.objects.get_or_create(name="reviewers")[0])
    return Team


def ask(created_by=None, **data):
    run = start("approvals-simple", {"requester": "rita", **data}, created_by=created_by)
    run_until_idle()
    return run, ApprovalRequest.objects.get(run=run)


def test_reviewers_see_their_requests_and_others_see_nothing(team):
    _, request = ask(title="Buy chairs")
    ann, otto = token_client(team.ann), token_client(team.otto)
    listed = ann.get("/api/v1/approvals/").json()["results"]
    assert [r["title"] for r in listed] == ["Buy chairs"]
    assert listed[0]["progress"] == "review waiting 0 of 1"
    assert otto.get("/api/v1/approvals/").json()["results"] == []
    assert otto.get(f"/api/v1/approvals/{request.pk}/").status_code == 404
    assert (
        otto.post(
            f"/api/v1/approvals/{request.pk}/decide/", {"action": "approve"}, format="json"
        ).status_code
        == 404
    )


def test_list_filters(team):
    ask(title="For reviewers")
    ask(title="For ann only", users=["ann"], groups=[])
    _, late = ask(title="Old one")
    from approvals import queue
    from approvals.models import ApprovalStage

    ApprovalStage.objects.filter(request=late).update(deadline=clock.now() - timedelta(hours=1))
    queue.rebuild([late.pk])  # the request's due_at follows, as the services would keep it
    bob = token_client(team.bob)
    titles = {
        r["title"] for r in bob.get("/api/v1/approvals/?assigned_to_me=true").json()["results"]
    }
    assert titles == {"For reviewers", "Old one"}
    overdue = token_client(team.ann).get("/api/v1/approvals/?overdue=true").json()["results"]
    assert [r["title"] for r in overdue] == ["Old one"]
    assert bob.get("/api/v1/approvals/?status=approved").json()["results"] == []
    assert bob.get("/api/v1/approvals/?workflow=approvals-simple").status_code == 200
    bad = bob.get("/api/v1/approvals/?status=maybe")
    assert bad.status_code == 400 and "status" in bad.json()["fields"]


def test_waiting_for_me_never_widens_what_a_user_sees(team):
    """With ``assigned_to_me`` on, the list skips the visibility query (the queue is a subset of
    it); spellings the filter does not read as "on" must keep the visibility query."""
    ask(title="For reviewers")
    ask(title="For otto", users=["otto"], groups=[])
    ann = token_client(team.ann)
    for query in ("assigned_to_me=true", "assigned_to_me=True"):
        titles = [r["title"] for r in ann.get(f"/api/v1/approvals/?{query}").json()["results"]]
        assert titles == ["For reviewers"], query
    for query in ("assigned_to_me=1", "assigned_to_me=yes", "assigned_to_me="):
        titles = [r["title"] for r in ann.get(f"/api/v1/approvals/?{query}").json()["results"]]
        assert titles == ["For reviewers"], query  # never otto's
    off = ann.get("/api/v1/approvals/?assigned_to_me=false").json()["results"]
    assert off == []  # visible to ann but not waiting for her: nothing here
    assert (
        token_client(team.rita).get("/api/v1/approvals/?assigned_to_me=true").json()["results"]
        == []
    )  # the requester sees her requests, but they never wait for her


def test_detail_shows_stages_history_and_payload(team):
    _, request = ask(payload={"amount": 250})
    body = token_client(team.ann).get(f"/api/v1/approvals/{request.pk}/").json()
    assert body["payload"] == {"amount": 250}
    assert [(s["name"], s["status"], s["groups"]) for s in body["stages"]] == [
        ("review", "open", ["reviewers"])
    ]
    assert [h["action"] for h in body["history"]] == ["create"]


def test_approve_resumes_the_run(team):
    run, request = ask()
    response = token_client(team.ann).post(
        f"/api/v1/approvals/{request.pk}/decide/",
        {"action": "approve", "comment": "fine"},
        format="json",
    )
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["status"] == "approved"
    assert body["history"][-1]["actor"] == "ann" and body["history"][-1]["channel"] == "api"
    run_until_idle()
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED and run.result["decided_by"] == "ann"


def test_refusals_non_assignee_403_second_decision_409_reject_without_reason_400(team):
    _, request = ask()
    url = f"/api/v1/approvals/{request.pk}/decide/"
    rita = token_client(team.rita)  # the requester sees her request but may not approve it
    refused = rita.post(url, {"action": "approve"}, format="json")
    assert refused.status_code == 403 and refused.json()["code"] == "not_allowed"
    assert refused.json()["rule"] == "not_assignee"  # which rule, without parsing the message
    no_reason = token_client(team.bob).post(url, {"action": "reject"}, format="json")
    assert no_reason.status_code == 400 and "comment" in no_reason.json()["fields"]
    assert token_client(team.ann).post(url, {"action": "approve"}, format="json").status_code == 200
    second = token_client(team.bob).post(url, {"action": "reject", "comment": "no"}, format="json")
    assert second.status_code == 409 and "ann" in second.json()["message"]
    assert DecisionRecord.objects.filter(request=request, action="approve").count() == 1
    assert DecisionRecord.objects.filter(request=request, action="reject").count() == 0


def test_non_assignee_with_visibility_gets_403(team):
    creator = make_user("creator", "workflows.add_workflowrun")
    _, request = ask(users=["ann"], groups=[], created_by=creator)
    # bob started nothing and is not assigned: he cannot see it (404)...
    assert (
        token_client(team.bob)
        .post(f"/api/v1/approvals/{request.pk}/decide/", {"action": "approve"}, format="json")
        .status_code
        == 404
    )
    # ...but the run's creator can see it and still may not decide it (403).
    response = token_client(creator).post(
        f"/api/v1/approvals/{request.pk}/decide/", {"action": "approve"}, format="json"
    )
    assert response.status_code == 403 and response.json()["rule"] == "not_assignee"


def test_edit_with_schema_validation(team):
    run, request = ask(
        payload={"amount": 5000},
        editable=True,
        schema={
            "type": "object",
            "required": ["amount"],
            "properties": {"amount": {"type": "number", "maximum": 5000}},
        },
    )
    url = f"/api/v1/approvals/{request.pk}/decide/"
    ann = token_client(team.ann)
    bad = ann.post(url, {"action": "edit", "value": {"amount": "lots"}}, format="json")
    assert bad.status_code == 400
    ok = ann.post(url, {"action": "edit", "value": {"amount": 4500}}, format="json").json()
    assert ok["value"] == {"amount": 4500} and ok["payload"] == {"amount": 5000}
    assert ok["diff"] == [{"path": "amount", "old": 5000, "new": 4500, "change": "changed"}]
    run_until_idle()
    run.refresh_from_db()
    assert run.result["value"] == {"amount": 4500}


def test_claim_release_and_delegate(team):
    _, request = ask()
    ann, bob = token_client(team.ann), token_client(team.bob)
    claimed = ann.post(f"/api/v1/approvals/{request.pk}/claim/", {}, format="json")
    assert claimed.status_code == 200
    assert claimed.json()["stages"][0]["claimed_by"] == "ann"
    taken = bob.post(f"/api/v1/approvals/{request.pk}/claim/", {}, format="json")
    assert taken.status_code == 409
    released = ann.post(f"/api/v1/approvals/{request.pk}/claim/", {"release": True}, format="json")
    assert released.json()["stages"][0]["claimed_by"] is None
    empty = ann.post(f"/api/v1/approvals/{request.pk}/delegate/", {}, format="json")
    assert empty.status_code == 400
    moved = ann.post(
        f"/api/v1/approvals/{request.pk}/delegate/",
        {"users": ["otto"], "comment": "Otto knows this"},
        format="json",
    )
    assert moved.status_code == 200, moved.json()
    assert moved.json()["stages"][0]["users"] == ["otto"]
    # otto can now see and decide it.
    assert (
        token_client(team.otto)
        .post(f"/api/v1/approvals/{request.pk}/decide/", {"action": "approve"}, format="json")
        .status_code
        == 200
    )


@override_settings(HITL_WEBHOOK_SECRETS=["hook-secret"])
def test_signed_webhook_decides_as_the_named_user(team):
    run, request = ask()

    def send(payload):
        from rest_framework.test import APIClient

        body = json.dumps(payload).encode()
        ts = str(int(time.time()))
        return APIClient().generic(
            "POST",
            "/api/v1/webhooks/inbound/",
            body,
            content_type="application/json",
            HTTP_X_HITL_TIMESTAMP=ts,
            HTTP_X_HITL_SIGNATURE=sign("hook-secret", ts, body),
        )

    refused = send(
        {
            "action": "approval.decide",
            "approval": str(request.pk),
            "decision": "approve",
            "actor": "otto",
        }
    )
    assert refused.status_code == 403  # otto is not an assignee: same rules as every channel
    # Fields of the wrong type are named in a 400 (a comment of true was a 500: webhook fuzz).
    for field, wrong in (("comment", True), ("decision", ["approve"]), ("actor", {"u": 1})):
        typed = send(
            {"action": "approval.decide", "approval": str(request.pk), "decision": "approve"}
            | {"actor": "bob", field: wrong}
        )
        assert typed.status_code == 400 and typed.json()["message"].startswith(
            f"approval.decide: {field}:"
        ), typed.json()
    assert not DecisionRecord.objects.filter(request=request, channel="webhook").exists()
    response = send(
        {
            "action": "approval.decide",
            "approval": str(request.pk),
            "decision": "approve",
            "actor": "bob",
            "comment": None,  # optional fields may be null: not given
            "stage": None,
        }
    )
    assert response.status_code == 200, response.json()
    assert response.json()["result"]["status"] == "approved"
    assert DecisionRecord.objects.get(request=request, action="approve").channel == "webhook"
    unknown = send({"action": "approval.decide", "approval": "nope", "decision": "approve"})
    assert unknown.status_code == 400
    run_until_idle()
    run.refresh_from_db()
    assert run.result["decided_by"] == "bob"


def test_approvals_list_query_count_is_constant(team, django_assert_max_num_queries):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    ann = token_client(team.ann)

    def count():
        with CaptureQueriesContext(connection) as queries:
            assert ann.get("/api/v1/approvals/?page_size=100").status_code == 200
        return len(queries)

    for _ in range(2):
        ask()
    few = count()
    for _ in range(8):
        ask()
    assert count() == few
