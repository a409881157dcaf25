"""The hitl_* management commands: happy paths, and bad input that changes nothing."""

import json
import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from tests.workflows import flows
from workflows import start
from workflows.models import EventMessage, RunEvent, RunStatus, WaitPoint, WorkflowRun
from workflows.testing import run_until_idle

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]


def run_command(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out, no_color=True)
    return out.getvalue()


def database_snapshot() -> tuple[int, ...]:
    return (
        WorkflowRun.objects.count(),
        WaitPoint.objects.count(),
        EventMessage.objects.count(),
        RunEvent.objects.count(),
    )


# --- hitl_start -------------------------------------------------------------------------------


def test_start_prints_the_run_id_and_status():
    out = run_command("hitl_start", "typed", "--input", '{"order_id": 7, "amount": "9.5"}')

    run = WorkflowRun.objects.get()
    assert out.strip() == f"Started run {run.id} of typed v1: pending"
    assert run.input == {"order_id": 7, "amount": "9.50"}
    assert run.status == RunStatus.PENDING


def test_start_with_the_same_idempotency_key_returns_the_existing_run():
    args = ("hitl_start", "counter", "--input", '{"tag": "a"}', "--idempotency-key", "order-7")
    first = run_command(*args)
    second = run_command(*args)

    run = WorkflowRun.objects.get()
    assert f"Started run {run.id}" in first
    assert second.strip() == (
        f"Run {run.id} of counter v1 already exists for idempotency key 'order-7': pending. "
        "Nothing new was started."
    )


def test_start_json_output():
    out = json.loads(run_command("hitl_start", "counter", "--input", '{"tag": "j"}', "--json"))
    run = WorkflowRun.objects.get()
    assert out == {
        "id": str(run.id),
        "workflow": "counter",
        "version": 1,
        "status": "pending",
        "created": True,
        "idempotency_key": None,
    }


def test_start_takes_the_newest_version():
    run_command("hitl_start", "versioned", "--input", '{"tag": "v"}')
    assert WorkflowRun.objects.get().workflow_version == 2


def test_start_of_an_unknown_workflow_is_refused():
    with pytest.raises(CommandError, match=r"Unknown workflow 'nope'\. Registered workflows: .*"):
        run_command("hitl_start", "nope", "--input", "{}")
    assert database_snapshot() == (0, 0, 0, 0)


def test_start_with_input_failing_the_serializer_lists_the_field_errors():
    with pytest.raises(CommandError) as excinfo:
        run_command("hitl_start", "typed", "--input", '{"order_id": "seven"}')

    message = str(excinfo.value)
    assert message.startswith("Input for workflow 'typed' is not valid.")
    assert "  order_id: A valid integer is required." in message
    assert "  amount: This field is required." in message
    assert database_snapshot() == (0, 0, 0, 0)


def test_start_with_input_that_is_not_an_object_is_refused():
    with pytest.raises(CommandError, match="must be a JSON object"):
        run_command("hitl_start", "counter", "--input", "[1, 2]")
    assert database_snapshot() == (0, 0, 0, 0)


def test_start_with_malformed_json_names_the_argument_and_the_position():
    with pytest.raises(CommandError) as excinfo:
        run_command("hitl_start", "typed", "--input", "{order_id: 7}")

    assert str(excinfo.value) == (
        "--input is not valid JSON: Expecting property name enclosed in double quotes "
        "at line 1, column 2:\n  {order_id: 7}\n   ^"
    )
    assert database_snapshot() == (0, 0, 0, 0)


def test_start_with_a_blank_idempotency_key_is_refused():
    with pytest.raises(CommandError, match="idempotency key must be 1 to 255 characters"):
        run_command("hitl_start", "counter", "--input", '{"tag": "k"}', "--idempotency-key", " ")
    assert database_snapshot() == (0, 0, 0, 0)


def test_errors_exit_non_zero_with_the_message_on_stderr(tmp_path):
    # Through manage.py as an operator runs it. The workflow is unknown, so no database is
    # touched; HITL_DATA_DIR keeps the subprocess away from the project's own var/ anyway.
    env = {**os.environ, "HITL_DATA_DIR": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "manage.py", "hitl_start", "nope", "--input", "{}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert "CommandError: Unknown workflow 'nope'" in proc.stderr
    assert proc.stdout == ""


# --- hitl_notify ------------------------------------------------------------------------------


def test_notify_resumes_the_waiting_run():
    run = start("counter", {"tag": "n"})
    run_until_idle()

    out = run_command("hitl_notify", "go-1-n", "--data", '{"ok": true}')

    assert out.strip() == "Event 'go-1-n': 1 run resumed."
    run.refresh_from_db()
    assert run.status == RunStatus.PENDING
    assert run.waits.get(key="go-1").resolution == {"ok": True}


def test_notify_for_an_event_nobody_waits_for_is_stored_and_delivered_later():
    out = run_command("hitl_notify", "go-1-later", "--data", '{"early": 1}')

    assert out.strip() == (
        "No run waits for event 'go-1-later' yet: stored (0 runs resumed). "
        "It will be delivered to the first wait for this event id."
    )
    assert EventMessage.objects.get().event_id == "go-1-later"

    run = start("counter", {"tag": "later"})
    run_until_idle()
    assert run.waits.get(key="go-1").resolution == {"early": 1}


def test_notify_json_output_and_default_data():
    out = json.loads(run_command("hitl_notify", "nobody", "--json"))
    assert out == {"event_id": "nobody", "resumed": 0, "stored": True}
    assert EventMessage.objects.get().data is None


def test_notify_with_malformed_json_changes_nothing():
    run = start("counter", {"tag": "bad"})
    run_until_idle()
    before = database_snapshot()

    with pytest.raises(CommandError, match=r"^--data is not valid JSON: .* line 1, column 8"):
        run_command("hitl_notify", "go-1-bad", "--data", '{"ok": }')

    assert database_snapshot() == before
    run.refresh_from_db()
    assert run.status == RunStatus.WAITING


def test_notify_with_a_blank_event_id_is_refused():
    with pytest.raises(CommandError, match="event_id must be 1 to 255 characters"):
        run_command("hitl_notify", "  ", "--data", "1")
    assert database_snapshot() == (0, 0, 0, 0)


# --- hitl_answer ------------------------------------------------------------------------------


def test_answer_resolves_an_input_request():
    run = start("ask", {})
    run_until_idle()
    wait = run.waits.get()

    out = run_command("hitl_answer", str(wait.pk), "--data", '{"approved": true}')

    assert out.strip() == f"Answered input request 'review' of run {run.id}; the run resumes."
    run_until_idle()
    run.refresh_from_db()
    assert run.result == {"answer": {"approved": True}, "timed_out": False}


def test_answer_failing_the_schema_lists_the_errors_and_changes_nothing():
    run = start("ask", {})
    run_until_idle()
    wait = run.waits.get()
    before = database_snapshot()

    with pytest.raises(CommandError) as excinfo:
        run_command("hitl_answer", str(wait.pk), "--data", '{"approved": "yes"}')

    assert "does not match the request's schema" in str(excinfo.value)
    assert "  approved: 'yes' is not of type 'boolean'" in str(excinfo.value)
    assert database_snapshot() == before
    wait.refresh_from_db()
    assert wait.is_open


# --- hitl_runs --------------------------------------------------------------------------------


@pytest.fixture
def some_runs():
    waiting = start("event-timeout", {"event_id": "order-9"})
    done = start("typed", {"order_id": 1, "amount": "2.00"})
    run_until_idle()
    pending = start("counter", {"tag": "p"})
    return {"waiting": waiting, "done": done, "pending": pending}


def test_runs_lists_status_and_what_each_run_waits_for_until_when(some_runs):
    out = run_command("hitl_runs")
    lines = out.splitlines()

    assert lines[0].split() == ["ID", "WORKFLOW", "STATUS", "WAITING", "FOR", "UNTIL", "UPDATED"]
    by_id = {line.split()[0]: line for line in lines[1:]}
    assert set(by_id) == {str(run.id) for run in some_runs.values()}

    waiting = by_id[str(some_runs["waiting"].id)]
    deadline = some_runs["waiting"].waits.get().deadline
    assert "event-timeout v1" in waiting
    assert " waiting " in waiting
    assert "event 'approval' (order-9)" in waiting
    assert "(in 4m)" in waiting  # the deadline, 300 s after the wait began
    assert deadline.strftime("%Y-%m-%d %H:%M") in waiting

    done = by_id[str(some_runs["done"].id)]
    assert " completed " in done
    assert "typed v1" in done


def test_runs_filter_by_status_and_workflow(some_runs):
    out = run_command("hitl_runs", "--status", "waiting")
    assert str(some_runs["waiting"].id) in out
    assert str(some_runs["done"].id) not in out

    out = run_command("hitl_runs", "--status", "completed,pending")
    assert str(some_runs["waiting"].id) not in out
    assert str(some_runs["done"].id) in out and str(some_runs["pending"].id) in out

    out = run_command("hitl_runs", "--workflow", "typed")
    assert str(some_runs["done"].id) in out
    assert str(some_runs["waiting"].id) not in out

    assert run_command("hitl_runs", "--status", "cancelled").strip() == "No runs."


def test_runs_json(some_runs):
    rows = json.loads(run_command("hitl_runs", "--json", "--status", "waiting"))

    assert len(rows) == 1
    row = rows[0]
    wait = some_runs["waiting"].waits.get()
    assert row["id"] == str(some_runs["waiting"].id)
    assert (row["workflow"], row["version"], row["status"]) == ("event-timeout", 1, "waiting")
    assert row["waiting_for"]["kind"] == "event"
    assert row["waiting_for"]["key"] == "approval"
    assert row["waiting_for"]["event_id"] == "order-9"
    assert row["waiting_for"]["deadline"] == wait.deadline.isoformat()


def test_runs_limit_says_how_many_were_left_out(some_runs):
    out = run_command("hitl_runs", "--limit", "1")
    assert "Showing the newest 1 of 3 runs (see --limit)." in out


def test_runs_with_an_unknown_status_is_refused(some_runs):
    with pytest.raises(CommandError) as excinfo:
        run_command("hitl_runs", "--status", "stuck")
    assert str(excinfo.value) == (
        "Unknown status 'stuck'. "
        "Choose from: pending, running, waiting, completed, failed, cancelled."
    )


def test_runs_with_an_unknown_workflow_is_refused():
    with pytest.raises(CommandError, match="Unknown workflow 'nope': it is not registered"):
        run_command("hitl_runs", "--workflow", "nope")


def test_runs_shows_when_a_step_retry_is_due():
    flows.failures_left["r"] = 5
    run = start("flaky", {"key": "r", "retries": 3})
    run_until_idle()
    run.refresh_from_db()
    assert run.status == RunStatus.PENDING

    row = json.loads(run_command("hitl_runs", "--json"))[0]

    assert (row["waiting_for"], row["waiting_for_text"]) == (None, "next attempt")
    assert row["until"] == run.wake_at.isoformat()
    assert "next attempt" in run_command("hitl_runs")


def test_the_demo_admin_made_by_dev_up_can_log_in_with_a_password_starting_with_a_dash():
    """`dev up` generates the demo password (URL-safe base64): one in 64 starts with "-"."""
    from django.contrib.auth import authenticate

    from hitlproject.dev import demo_admin_args

    name, *args = demo_admin_args("admin", "-kq3Zr_Xw9a1")
    call_command(name, *args, stdout=StringIO())
    user = authenticate(username="admin", password="-kq3Zr_Xw9a1")
    assert user is not None and user.is_superuser


def test_running_the_demo_admin_again_keeps_its_browser_sessions(client):
    """`dev up` runs it on every start: an admin logged in before a restart stays logged in."""
    from hitlproject.dev import demo_admin_args

    name, *args = demo_admin_args("admin", "s3cret-pass")
    call_command(name, *args, stdout=StringIO())
    client.login(username="admin", password="s3cret-pass")
    assert client.get("/admin/").status_code == 200
    call_command(name, *args, stdout=StringIO())
    assert client.get("/admin/").status_code == 200
    # A new password still takes effect (and ends the old sessions, as Django does).
    name, *args = demo_admin_args("admin", "another-pass")
    call_command(name, *args, stdout=StringIO())
    assert client.get("/admin/").status_code == 302


def test_dev_up_points_links_at_the_port_it_serves_on():
    from hitlproject.dev import base_url

    assert base_url("127.0.0.1", "8765") == "http://localhost:8765"
    assert base_url("0.0.0.0", "8000") == "http://localhost:8000"
    assert base_url("review.example.com", "80") == "http://review.example.com:80"
    assert base_url("fe80::1", "8000") == "http://[fe80::1]:8000"
