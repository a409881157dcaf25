"""Notification channels: email, Slack, signed webhook; delivery after commit with retries;
a failing channel never blocks or undoes a decision."""

import json
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core import mail

from approvals import tasks
from approvals.models import ApprovalRequest, ApprovalStatus, Notification, NotificationStatus
from approvals.notifications import NotificationChannel, verify_signature
from approvals.services import approval_decide
from tests.approvals.conftest import start_and_wait
from workflows import clock
from workflows.models import RunStatus
from workflows.sweeper import sweep
from workflows.testing import run_until_idle

pytestmark = pytest.mark.django_db


class Receiver:
    """A real HTTP server on 127.0.0.1 answering with ``status`` and keeping what it got."""

    def __init__(self):
        self.status = 500
        self.requests: list[dict] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append({"headers": dict(self.headers), "body": body})
                self.send_response(receiver.status)
                self.end_headers()
                self.wfile.write(b"nope" if receiver.status >= 400 else b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def receiver():
    with Receiver() as server:
        yield server


def open_request(requester="rita"):
    run = start_and_wait("approvals-simple", {"requester": requester})
    return run, ApprovalRequest.objects.get(run=run)


def test_approval_needed_emails_each_assignee_with_links(people):
    _, request = open_request()
    needed = Notification.objects.filter(request=request, hook="approval_needed")
    # The reviewers, not the requester.
    assert sorted(needed.values_list("recipient__username", flat=True)) == ["ann", "bob", "carl"]
    assert set(needed.values_list("status", flat=True)) == {NotificationStatus.PENDING}

    ann = needed.get(recipient=people.ann)
    assert tasks.deliver(ann.pk) == "sent"
    assert tasks.deliver(ann.pk) == "skipped"  # a second delivery of the task sends nothing
    ann.refresh_from_db()
    assert (ann.status, ann.attempts) == (NotificationStatus.SENT, 1)

    [email] = mail.outbox
    assert email.to == ["ann@example.com"]
    assert email.subject == "[Approvals] Approval needed (review): Simple request"
    request_url = f"http://testserver/admin/approvals/approvalrequest/{request.pk}/change/"
    assert request_url in email.body
    assert "http://testserver/approvals/link/" in email.body
    html, mimetype = email.alternatives[0]
    assert mimetype == "text/html"
    assert request_url in html and "Approve</a>" in html


def test_resolution_is_announced_to_the_requester(people):
    _, request = open_request()
    approval_decide(request=request, actor=people.ann, action="reject", comment="no")
    resolved = Notification.objects.get(request=request, hook="approval_resolved")
    assert resolved.recipient == people.requester
    tasks.deliver(resolved.pk)
    assert "rejected by ann" in mail.outbox[-1].body
    assert "Reason: no" in mail.outbox[-1].body


def test_delivery_is_enqueued_to_django_q_after_commit(
    people, monkeypatch, django_capture_on_commit_callbacks
):
    sent = []
    monkeypatch.setattr("django_q.tasks.async_task", lambda *a, **k: sent.append(a))
    _, request = open_request()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        approval_decide(request=request, actor=people.ann, action="approve")
    assert sent == []  # nothing leaves before the decision commits
    for callback in callbacks:
        callback()
    resolved = Notification.objects.get(request=request, hook="approval_resolved")
    assert ("approvals.tasks.deliver", resolved.pk) in sent


def test_failing_webhook_is_retried_and_the_decision_stands(people, settings, receiver):
    settings.HITL_NOTIFICATION_CHANNELS = [
        {"type": "webhook", "url": receiver.url, "secret": "s3cret", "hooks": ["approval_resolved"]}
    ]
    settings.HITL_NOTIFICATION_BACKOFF_SECONDS = 30
    run, request = open_request()
    approval_decide(request=request, actor=people.ann, action="approve")
    notification = Notification.objects.get(request=request, channel="webhook")

    # First attempt: the server answers 500.
    assert tasks.deliver(notification.pk) == "retry"
    notification.refresh_from_db()
    assert notification.status == NotificationStatus.PENDING
    assert notification.attempts == 1
    assert "500" in notification.last_error
    # The decision stands and the run goes on regardless.
    run_until_idle()
    run.refresh_from_db()
    request.refresh_from_db()
    assert request.status == ApprovalStatus.APPROVED
    assert run.status == RunStatus.COMPLETED and run.result["approved"] is True

    # Not before the backoff has passed...
    assert tasks.deliver(notification.pk) == "skipped"
    clock.travel(timedelta(seconds=31))
    assert sweep().hooks >= 1  # the sweeper re-enqueues the due retry
    notification.refresh_from_db()
    assert notification.enqueued_at is not None
    assert tasks.deliver(notification.pk) == "retry"
    notification.refresh_from_db()
    assert notification.attempts == 2
    # ...exponential: 60 s after the second failure.
    clock.travel(timedelta(seconds=59))
    assert tasks.deliver(notification.pk) == "skipped"

    receiver.status = 200
    clock.travel(timedelta(seconds=2))
    sweep()
    assert tasks.deliver(notification.pk) == "sent"
    notification.refresh_from_db()
    assert (notification.status, notification.attempts) == (NotificationStatus.SENT, 3)

    # Three real requests, each signed, all with the same delivery id.
    assert len(receiver.requests) == 3
    for received in receiver.requests:
        headers = received["headers"]
        assert headers["X-Hitl-Delivery"] == str(notification.pk)
        assert headers["X-Hitl-Event"] == "approval_resolved"
        assert verify_signature(
            "s3cret", received["body"], headers["X-Hitl-Timestamp"], headers["X-Hitl-Signature"]
        )
    body = json.loads(receiver.requests[-1]["body"])
    assert body["hook"] == "approval_resolved"
    assert body["request"]["status"] == "approved"


def test_delivery_gives_up_after_max_attempts(people, settings, receiver):
    settings.HITL_NOTIFICATION_CHANNELS = [{"type": "slack", "webhook_url": receiver.url}]
    settings.HITL_NOTIFICATION_MAX_ATTEMPTS = 2
    _, request = open_request()
    notification = Notification.objects.get(request=request, hook="approval_needed")
    assert tasks.deliver(notification.pk) == "retry"
    clock.travel(timedelta(hours=1))
    assert tasks.deliver(notification.pk) == "failed"
    notification.refresh_from_db()
    assert notification.status == NotificationStatus.FAILED
    assert "HTTP Error 500" in notification.last_error
    clock.travel(timedelta(hours=1))
    sweep()
    assert tasks.deliver(notification.pk) == "skipped"
    assert (
        "Approval needed (review): Simple request"
        in json.loads(receiver.requests[0]["body"])["text"]
    )


def test_signature_check_rejects_tampering_and_old_timestamps():
    from approvals.notifications import sign

    body, ts = b'{"a":1}', str(int(clock.now().timestamp()))
    signature = "sha256=" + sign("k", ts, body)
    assert verify_signature("k", body, ts, signature)
    assert not verify_signature("k", b'{"a":2}', ts, signature)
    assert not verify_signature("other", body, ts, signature)
    clock.travel(timedelta(minutes=10))
    assert not verify_signature("k", body, ts, signature)


class BrokenChannel(NotificationChannel):
    type = "broken"

    def messages(self, event):
        raise RuntimeError("template exploded")


def test_a_channel_that_cannot_render_never_blocks_a_decision(people, settings):
    settings.HITL_NOTIFICATION_CHANNELS = [
        {"type": "tests.approvals.test_notifications.BrokenChannel"},
        "email",
    ]
    run, request = open_request()
    approval_decide(request=request, actor=people.ann, action="approve")
    run_until_idle()
    run.refresh_from_db()
    assert run.result["approved"] is True
    # The working channel still got its notifications.
    assert set(Notification.objects.values_list("channel", flat=True)) == {"email"}


def test_a_channel_removed_from_settings_fails_delivery_not_the_decision(people, settings):
    _, request = open_request()
    notification = Notification.objects.filter(request=request).first()
    settings.HITL_NOTIFICATION_CHANNELS = []
    assert tasks.deliver(notification.pk) == "retry"
    notification.refresh_from_db()
    assert "No notification channel named 'email'" in notification.last_error
