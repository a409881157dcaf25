"""The runs admin seen by reviewers: it lists the runs ``runs_visible_to`` grants (as the API,
the review page and the WebSockets do), and odd input in its filters and actions is no 500."""

import pytest
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.urls import reverse

from approvals.models import ApprovalRequest
from workflows import start
from workflows.models import RunStatus, WorkflowRun
from workflows.testing import run_until_idle

pytestmark = pytest.mark.django_db

RUNS = reverse("admin:workflows_workflowrun_changelist")


def staff(user, *perms):
    user.is_staff = True
    user.save()
    for codename in perms:
        user.user_permissions.add(Permission.objects.get(codename=codename))
    return type(user).objects.get(pk=user.pk)


def secret_request(people):
    """A request only fay is asked to decide, with a payload nobody else may read."""
    run = start(
        "approvals-simple",
        {
            "requester": people.requester.username,
            "users": ["fay"],
            "groups": [],
            "title": "Secret raise",
            "payload": {"salary": 123456},
        },
    )
    run_until_idle()
    return ApprovalRequest.objects.get(run=run)


def change_url(run_id):
    return reverse("admin:workflows_workflowrun_change", args=[run_id])


def listed(response):
    return {run.pk for run in response.context["cl"].result_list}


def messages_of(response):
    return [str(m) for m in get_messages(response.wsgi_request)]


def test_staff_see_only_the_runs_they_may_see(client, people):
    approval = secret_request(people)
    own = start("approvals-simple", {"title": "Mine"}, created_by=people.outsider)
    run_until_idle()

    # View permission, but neither assigned nor the starter: the run is not there for them,
    # as the API and the review page say.
    client.force_login(staff(people.outsider, "view_workflowrun"))
    assert client.get(f"/api/runs/{approval.run_id}/").status_code == 404
    assert listed(client.get(RUNS)) == {own.pk}
    page = client.get(change_url(approval.run_id), follow=True)
    assert "123456" not in page.content.decode()
    assert any("exist" in text for text in messages_of(page))

    # The assignee sees the run they are asked to decide, input included.
    client.force_login(staff(people.fay, "view_workflowrun"))
    assert listed(client.get(RUNS)) == {approval.run_id}
    page = client.get(change_url(approval.run_id))
    assert page.status_code == 200 and "123456" in page.content.decode()

    # Run managers see every run.
    client.force_login(staff(people.ceo, "view_workflowrun", "manage_any_run"))
    assert listed(client.get(RUNS)) == {approval.run_id, own.pk}


def test_an_action_on_an_id_that_is_not_one_changes_nothing(client, people):
    approval = secret_request(people)
    client.force_login(staff(people.ceo, "view_workflowrun", "manage_any_run"))
    response = client.post(
        RUNS,
        {"action": "cancel_runs", "_selected_action": ["nope", approval.run_id], "post": "yes"},
        follow=True,
    )
    assert response.status_code == 200
    assert any("Nothing was changed" in text for text in messages_of(response))
    assert WorkflowRun.objects.get(pk=approval.run_id).status == RunStatus.WAITING


def test_a_workflow_filter_with_a_nul_byte_lists_nothing(client, people):
    secret_request(people)
    client.force_login(staff(people.ceo, "view_workflowrun", "manage_any_run"))
    response = client.get(RUNS, {"workflow_name": "a\x00b"})
    assert response.status_code == 200 and listed(response) == set()


def test_waits_and_events_admins_show_only_those_of_runs_the_user_may_see(client, people):
    approval = secret_request(people)
    own = start("approvals-simple", {"title": "Mine"}, created_by=people.outsider)
    run_until_idle()
    client.force_login(staff(people.outsider, "view_waitpoint", "view_runevent"))

    for model in ("waitpoint", "runevent"):
        page = client.get(reverse(f"admin:workflows_{model}_changelist"))
        runs = {row.run_id for row in page.context["cl"].result_list}
        assert runs == {own.pk}, model
        assert "Secret raise" not in page.content.decode()
    hidden = approval.run.waits.first()
    # The admin's answer for an object outside its queryset: back to the index, "doesn't exist".
    page = client.get(reverse("admin:workflows_waitpoint_change", args=[hidden.pk]))
    assert page.status_code == 302
