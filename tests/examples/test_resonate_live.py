"""Resonate (seed 004) end to end with real worker clusters: a workflow blocks on a durable
promise and prints its callback; starting the same id again reconnects to the pending run;
the cluster is SIGKILLed mid-block; the promise is resolved from another process (the CLI)
and over the callback URL (the API); the surviving cluster finishes both runs."""

import json
import shlex
import subprocess
import sys

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client
from rest_framework.authtoken.models import Token

from examples.demo import ensure_accounts
from examples.resonate import start_promise_workflow
from tests.e2e.processes import ROOT, Cluster, child_env, wait_until
from workflows.models import RunStatus, WorkflowRun

pytestmark = [pytest.mark.multiprocess, pytest.mark.django_db(transaction=True)]


def manage(env: dict, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return done.stdout


def blocked(run_id) -> bool:
    run = WorkflowRun.objects.get(pk=run_id)
    return run.status == RunStatus.WAITING and run.waits.filter(key="blocking-promise").exists()


def test_promise_resolved_from_cli_and_url_after_the_blocked_worker_was_killed(tmp_path):
    env = child_env(HITL_WORKERS="1")
    first = Cluster(env, tmp_path / "first.log")
    second = None
    try:
        started = json.loads(
            manage(
                env,
                "hitl_start",
                "resonate-promise",
                "--input",
                '{"workflow_id": "hitl-cli"}',
                "--idempotency-key",
                "hitl-cli",
                "--json",
            )
        )
        by_cli = started["id"]
        by_url = str(start_promise_workflow("hitl-url").pk)
        wait_until(
            lambda: blocked(by_cli) and blocked(by_url), timeout=30, what="both runs to block"
        )

        # The callback is printed by the worker and recorded with the run.
        callback = WorkflowRun.objects.get(pk=by_cli).steps.get(name="send-email").result
        assert callback["promise_id"] == "hitl-cli.blocking-promise"
        assert callback["cli"] == (
            "python manage.py hitl_notify hitl-cli.blocking-promise --data '\"human_approval\"'"
        )
        assert "workflow hitl-cli blocked" in (tmp_path / "first.log").read_text()

        # Same id, same run: a second start reconnects to the pending one.
        again = json.loads(
            manage(
                env,
                "hitl_start",
                "resonate-promise",
                "--input",
                '{"workflow_id": "hitl-cli"}',
                "--idempotency-key",
                "hitl-cli",
                "--json",
            )
        )
        assert (again["id"], again["created"], again["status"]) == (by_cli, False, "waiting")
        assert str(start_promise_workflow("hitl-url").pk) == by_url

        second = Cluster(env, tmp_path / "second.log")
        first.kill()  # mid-block: the worker that ran both runs dies

        # The printed command, as a person would paste it (with this interpreter as python).
        program, *args = shlex.split(callback["cli"])
        assert program == "python"
        notified = json.loads(manage(env, *args[1:], "--json"))
        assert notified["resumed"] == 1

        ensure_accounts()
        operator = User.objects.get(username="operator")
        assert operator.groups.filter(pk=Group.objects.get(name="operators").pk).exists()
        token = Token.objects.create(user=operator).key
        url_callback = WorkflowRun.objects.get(pk=by_url).steps.get(name="send-email").result
        response = Client().post(
            url_callback["url"].removeprefix("http://localhost:8000"),
            {"event_id": url_callback["promise_id"], "data": "human_approval"},
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Token {token}",
        )
        assert response.status_code == 200, response.content
        assert response.json()["resumed"] == 1

        wait_until(
            lambda: (
                WorkflowRun.objects.filter(
                    pk__in=[by_cli, by_url], status=RunStatus.COMPLETED
                ).count()
                == 2
            ),
            timeout=30,
            what="both runs to complete on the surviving cluster",
        )
    finally:
        first.kill()
        if second is not None:
            second.stop()

    for run_id, workflow_id in [(by_cli, "hitl-cli"), (by_url, "hitl-url")]:
        run = WorkflowRun.objects.get(pk=run_id)
        assert run.result == {
            "message": f"workflow {workflow_id} completed",
            "value": "human_approval",
        }
    survivor_log = (tmp_path / "second.log").read_text()
    assert "workflow hitl-cli unblocked" in survivor_log
    assert "workflow hitl-url unblocked" in survivor_log
    assert "unblocked" not in (tmp_path / "first.log").read_text()
