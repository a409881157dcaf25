"""Signed decision links from emails: GET confirms (never decides), POST decides, once."""

import html
import re
from datetime import timedelta

import pytest

from approvals import conf
from approvals.models import ApprovalRequest, ApprovalStatus, Notification
from approvals.services import approval_decide
from tests.approvals.conftest import start_and_wait
from workflows import clock

pytestmark = pytest.mark.django_db


def links_for(request, user):
    """The approve / reject URLs (paths) from the email sent to ``user``."""
    text = Notification.objects.get(
        request=request, recipient=user, hook="approval_needed"
    ).message["text"]
    found = dict(re.findall(r"^(Approve|Reject): http://testserver(\S+)$", text, re.M))
    return found["Approve"], found["Reject"]


@pytest.fixture
def pending(people):
    run = start_and_wait("approvals-simple", {"requester": "rita"})
    return ApprovalRequest.objects.get(run=run)


def test_get_shows_a_confirmation_and_decides_nothing(client, people, pending):
    approve_url, _ = links_for(pending, people.ann)
    for _ in range(3):  # link scanners and previews open links repeatedly
        response = client.get(approve_url)
        assert response.status_code == 200
    assert b'method="post"' in response.content
    assert b"Simple request" in response.content
    pending.refresh_from_db()
    assert pending.status == ApprovalStatus.PENDING
    assert not pending.decisions.filter(action="approve").exists()


def test_post_decides_once_as_the_linked_user(client, people, pending):
    approve_url, reject_url = links_for(pending, people.ann)
    response = client.post(approve_url, {"comment": "fine"})
    assert response.status_code == 200
    assert b"recorded" in response.content
    pending.refresh_from_db()
    assert pending.status == ApprovalStatus.APPROVED
    record = pending.decisions.get(action="approve")
    assert (record.actor_name, record.channel, record.comment) == ("ann", "email-link", "fine")

    # Used: the same link, and its sibling reject link, say so.
    for url in (approve_url, reject_url):
        for method in (client.get, client.post):
            response = method(url)
            assert response.status_code == 410
            assert b"already used" in response.content


def test_expired_link_says_so(client, people, pending):
    approve_url, _ = links_for(pending, people.ann)
    clock.travel(timedelta(seconds=conf.link_max_age() + 1))
    for method in (client.get, client.post):
        response = method(approve_url)
        assert response.status_code == 410
        assert b"expired" in response.content
    pending.refresh_from_db()
    assert pending.status == ApprovalStatus.PENDING


def test_tampered_link_is_invalid(client, people, pending):
    approve_url, _ = links_for(pending, people.ann)
    forged = approve_url.replace("/link/", "/link/x")
    assert client.get(forged).status_code == 404
    assert client.post(forged).status_code == 404


def test_reject_link_requires_a_reason(client, people, pending):
    _, reject_url = links_for(pending, people.ann)
    response = client.post(reject_url, {"comment": ""})
    assert response.status_code == 400
    assert b"reason is required" in response.content
    response = client.post(reject_url, {"comment": "duplicate"})
    assert response.status_code == 200
    pending.refresh_from_db()
    assert (pending.status, pending.reason) == (ApprovalStatus.REJECTED, "duplicate")


def test_link_after_someone_else_decided_reports_who(client, people, pending):
    approve_url, _ = links_for(pending, people.bob)
    approval_decide(request=pending, actor=people.ann, action="approve")
    response = client.get(approve_url)
    assert response.status_code == 409
    response = client.post(approve_url)
    assert response.status_code == 409
    assert b"already approved by ann" in response.content


def test_link_of_someone_no_longer_assigned_is_refused(client, people, pending):
    approve_url, _ = links_for(pending, people.bob)
    approval_decide(request=pending, actor=people.boss, action="reassign", users=["fay"])
    response = client.post(approve_url)
    assert response.status_code == 403
    pending.refresh_from_db()
    assert pending.status == ApprovalStatus.PENDING


def test_the_confirmation_shows_the_value_as_json(client, people):
    run = start_and_wait(
        "approvals-simple",
        {"requester": "rita", "payload": {"amount": 15000, "urgent": True, "note": None}},
    )
    approve_url, _ = links_for(ApprovalRequest.objects.get(run=run), people.ann)
    page = html.unescape(client.get(approve_url).content.decode())
    assert '"urgent": true' in page and '"note": null' in page
    assert "True" not in page and "None" not in page  # not Python's repr
