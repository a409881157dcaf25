"""The runs admin: list, filters, search, change page, cancel / retry, permissions, queries."""

import pytest
from django.contrib.auth.models import Permission, User
from django.contrib.messages import get_messages
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from tests.workflows import flows
from workflows import notify, start
from workflows.models import EventMessage, RunEvent, RunStatus, WaitPoint, WaitStatus, WorkflowRun
from workflows.testing import run_until_idle

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:workflows_workflowrun_changelist")


@pytest.fixture(autouse=True)
def _plain_static_files(settings):
    # The project's manifest storage needs collectstatic; admin pages only need static URLs.
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


def change_url(run) -> str:
    return reverse("admin:workflows_workflowrun_change", args=[run.pk])


def cancel_url(run) -> str:
    return reverse("admin:workflows_workflowrun_cancel", args=[run.pk])


def retry_url(run) -> str:
    return reverse("admin:workflows_workflowrun_retry", args=[run.pk])


def refresh(run):
    run.refresh_from_db()
    return run


def messages_of(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def make_user(username: str, *perms: str, staff: bool = True) -> User:
    user = User.objects.create_user(username, password="pw", is_staff=staff)
    for perm in perms:
        app_label, codename = perm.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    return user


@pytest.fixture
def viewer_client(client):
    """Staff with the view permission only."""
    client.force_login(make_user("viewer", "workflows.view_workflowrun"))
    return client


@pytest.fixture
def manager_client(client):
    """Staff who may cancel and retry: view + manage_any_run, nothing else."""
    client.force_login(
        make_user("manager", "workflows.view_workflowrun", "workflows.manage_any_run")
    )
    return client


def waiting_run(tag: str = "a", created_by=None) -> WorkflowRun:
    run = start("event-timeout", {"event_id": f"order-{tag}"}, created_by=created_by)
    run_until_idle()
    return refresh(run)


def failed_run(key: str = "k") -> WorkflowRun:
    flows.failures_left[key] = 1
    run = start("fails-then-fixed", {"key": key})
    run_until_idle()
    assert refresh(run).status == RunStatus.FAILED
    return run


def completed_run() -> WorkflowRun:
    run = start("typed", {"order_id": 3, "amount": "4.00"})
    run_until_idle()
    assert refresh(run).status == RunStatus.COMPLETED
    return run


def listed_ids(response) -> set[str]:
    return {str(run.pk) for run in response.context["cl"].result_list}


# --- list, filters, search --------------------------------------------------------------------


def test_list_shows_status_what_each_run_waits_for_and_until_when(admin_client):
    waiting = waiting_run()
    done = completed_run()

    response = admin_client.get(CHANGELIST)

    assert response.status_code == 200
    assert listed_ids(response) == {str(waiting.pk), str(done.pk)}
    html = response.content.decode()
    assert "event-timeout v1" in html and "typed v1" in html
    assert (
        'class="hitl-badge"' in html and ">Waiting</span>" in html and ">Completed</span>" in html
    )
    assert "event &#x27;approval&#x27; (order-a)" in html
    assert waiting.waits.get().deadline.isoformat() in html  # the deadline column's title
    assert "(in 4" in html  # ... and how far away it is


def test_list_filters_by_status_and_workflow(admin_client):
    waiting = waiting_run()
    done = completed_run()
    failed = failed_run()

    assert listed_ids(admin_client.get(CHANGELIST, {"status": "waiting"})) == {str(waiting.pk)}
    assert listed_ids(admin_client.get(CHANGELIST, {"status": "failed"})) == {str(failed.pk)}
    response = admin_client.get(CHANGELIST, {"workflow_name": "typed"})
    assert listed_ids(response) == {str(done.pk)}
    # The workflow filter offers the workflows that have runs.
    html = response.content.decode()
    assert "?workflow_name=event-timeout" in html and "?workflow_name=fails-then-fixed" in html


def test_workflow_filter_choices_are_cached_for_a_few_seconds(admin_client, settings):
    settings.HITL_FILTER_CHOICES_CACHE_SECONDS = 30
    waiting_run()
    assert "?workflow_name=event-timeout" in admin_client.get(CHANGELIST).content.decode()
    start("sleeper", {"seconds": 5})
    # Within the cache's lifetime the sidebar is not recomputed; the filter itself still works.
    html = admin_client.get(CHANGELIST).content.decode()
    assert "?workflow_name=sleeper" not in html
    assert len(listed_ids(admin_client.get(CHANGELIST, {"workflow_name": "sleeper"}))) == 1

    from workflows.choices import forget_choices

    forget_choices()
    assert "?workflow_name=sleeper" in admin_client.get(CHANGELIST).content.decode()
    settings.HITL_FILTER_CHOICES_CACHE_SECONDS = 0  # off: always current
    start("typed", {"order_id": 1, "amount": "1.00"})
    assert "?workflow_name=typed" in admin_client.get(CHANGELIST).content.decode()


def test_search_by_id_short_id_workflow_and_idempotency_key(admin_client):
    keyed = start("counter", {"tag": "s"}, idempotency_key="invoice-2024-17")
    other = waiting_run()

    def search(term):
        return listed_ids(admin_client.get(CHANGELIST, {"q": term}))

    assert search(str(keyed.pk)) == {str(keyed.pk)}
    assert search(str(keyed.pk)[:8]) == {str(keyed.pk)}
    assert search("invoice-2024-17") == {str(keyed.pk)}
    assert search("event-timeout") == {str(other.pk)}
    assert search("no-such-thing") == set()


# --- change page ------------------------------------------------------------------------------


def test_change_page_shows_steps_waits_timeline_and_traceback(admin_client):
    run = failed_run()

    response = admin_client.get(change_url(run))

    assert response.status_code == 200
    html = response.content.decode()
    # The run's error with its traceback, readable in a <pre> block.
    assert '<pre class="hitl-traceback"' in html
    assert "Traceback (most recent call last)" in html
    assert "ConnectionError: upstream unavailable" in html
    assert "StepFailed: Step &#x27;charge&#x27; failed" in html
    # Steps inline: sequence, name, status, attempts, result, error.
    assert "prepare" in html and "charge" in html
    assert "&quot;prepared&quot;" in html  # result preview of "prepare"
    # The timeline: steps and run events in order, each with its source.
    timeline = response.context["timeline"]
    titles = [(e.source, e.title) for e in timeline]
    assert titles[0] == ("event", "run.started")
    assert ("step", "#0 prepare") in titles and ("step", "#1 charge") in titles
    assert titles[-1] == ("event", "run.finished")
    assert titles.index(("step", "#0 prepare")) < titles.index(("step", "#1 charge"))
    assert 'id="run-timeline"' in html
    # Read-only: no save buttons, no editable inputs for the run's fields.
    assert 'name="_save"' not in html
    assert 'name="status"' not in html


def test_timeline_includes_waits_and_their_resolution(admin_client):
    run = waiting_run("t")
    notify("order-t", {"approved": True})
    run_until_idle()

    timeline = admin_client.get(change_url(run)).context["timeline"]

    assert [(e.source, e.title, e.status) for e in timeline] == [
        ("event", "run.started", ""),
        ("step", "#0 approval", "completed"),
        ("wait", "#0 waits for event 'approval' on event id order-t", WaitStatus.RESOLVED),
        ("event", "run.waiting", ""),
        ("event", "event.received", ""),
        # The wait's step is completed like any step, with its event, when the run moves on.
        ("event", "step.finished", ""),
        ("event", "run.finished", ""),
    ]
    wait = timeline[2]
    assert any(d.startswith("deadline ") for d in wait.details)
    assert any('resolution: {"approved": true}' in d for d in wait.details)
    times = [e.at for e in timeline]
    assert times == sorted(times)


def test_runs_cannot_be_added_or_edited_even_by_superusers(admin_client):
    run = waiting_run()
    assert admin_client.get(reverse("admin:workflows_workflowrun_add")).status_code == 403
    response = admin_client.post(change_url(run), {"status": "completed", "workflow_name": "x"})
    assert response.status_code == 403
    assert refresh(run).status == RunStatus.WAITING


def test_runs_cannot_be_deleted_even_by_superusers(admin_client):
    done = completed_run()
    delete = reverse("admin:workflows_workflowrun_delete", args=[done.pk])

    assert admin_client.get(delete).status_code == 403
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    assert WorkflowRun.objects.filter(pk=done.pk).exists()
    # No bulk delete action either: only cancel and retry.
    actions = admin_client.get(CHANGELIST).context["action_form"].fields["action"].choices
    assert [name for name, _ in actions] == ["", "cancel_runs", "retry_runs"]


# --- actions ----------------------------------------------------------------------------------


def test_bulk_cancel_asks_for_confirmation_then_reports_each_refusal(manager_client):
    first, second = waiting_run("1"), waiting_run("2")
    done = completed_run()
    selection = {"action": "cancel_runs", "_selected_action": [first.pk, second.pk, done.pk]}

    confirm = manager_client.post(CHANGELIST, selection)
    assert confirm.status_code == 200
    assert confirm.templates[0].name == "admin/workflows/workflowrun/action_confirmation.html"
    assert {r.pk for r in confirm.context["affected"]} == {first.pk, second.pk}
    assert [r.pk for r in confirm.context["refused"]] == [done.pk]
    assert refresh(first).status == RunStatus.WAITING  # nothing happened yet

    response = manager_client.post(CHANGELIST, {**selection, "post": "yes", "reason": "dup"})

    assert response.status_code == 302
    assert refresh(first).status == RunStatus.CANCELLED
    assert refresh(second).status == RunStatus.CANCELLED
    assert refresh(done).status == RunStatus.COMPLETED
    assert first.error == "Cancelled in the admin by manager. dup"
    assert first.waits.get().status == WaitStatus.CANCELLED
    msgs = messages_of(response)
    assert f"Run {done.pk} not changed: Cannot cancel run {done.pk}: it is completed." in msgs
    assert any(m.startswith("Cancelled 2 runs: ") and str(first.pk) in m for m in msgs)


def test_bulk_retry_retries_failed_runs_and_refuses_the_others(manager_client):
    failed = failed_run()
    waiting = waiting_run()
    selection = {"action": "retry_runs", "_selected_action": [failed.pk, waiting.pk], "post": "yes"}

    response = manager_client.post(CHANGELIST, selection)

    assert refresh(failed).status == RunStatus.PENDING
    assert refresh(waiting).status == RunStatus.WAITING
    msgs = messages_of(response)
    assert f"Run {waiting.pk} not changed: Cannot retry run {waiting.pk}: it is waiting." in msgs
    assert f"Retrying 1 run: {failed.pk} (fails-then-fixed)." in msgs
    run_until_idle()
    assert refresh(failed).status == RunStatus.COMPLETED


def test_change_page_buttons_confirm_then_cancel(manager_client):
    run = waiting_run()

    page = manager_client.get(change_url(run)).content.decode()
    assert f'href="{cancel_url(run)}"' in page
    assert f'href="{retry_url(run)}"' not in page  # only failed runs can be retried

    confirm = manager_client.get(cancel_url(run))
    assert confirm.status_code == 200
    assert "csrfmiddlewaretoken" in confirm.content.decode()
    assert refresh(run).status == RunStatus.WAITING

    response = manager_client.post(cancel_url(run), {"reason": "customer left"})
    assert response.status_code == 302 and response.url == change_url(run)
    assert refresh(run).status == RunStatus.CANCELLED
    assert run.error == "Cancelled in the admin by manager. customer left"


def test_change_page_retry_button(manager_client):
    run = failed_run()
    page = manager_client.get(change_url(run)).content.decode()
    assert f'href="{retry_url(run)}"' in page and f'href="{cancel_url(run)}"' not in page

    response = manager_client.post(retry_url(run))

    assert response.status_code == 302
    assert refresh(run).status == RunStatus.PENDING
    assert messages_of(response) == [f"Retrying 1 run: {run.pk} (fails-then-fixed)."]


def test_cancel_of_a_completed_run_from_its_page_is_refused(manager_client):
    run = completed_run()
    assert f'href="{cancel_url(run)}"' not in manager_client.get(change_url(run)).content.decode()

    response = manager_client.post(cancel_url(run))

    assert refresh(run).status == RunStatus.COMPLETED
    assert messages_of(response) == [
        f"Run {run.pk} not changed: Cannot cancel run {run.pk}: it is completed."
    ]


def test_the_buttons_need_csrf(manager_client):
    from django.test import Client

    run = waiting_run()
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(User.objects.get(username="manager"))
    assert strict.post(cancel_url(run)).status_code == 403
    assert refresh(run).status == RunStatus.WAITING


# --- permissions ------------------------------------------------------------------------------


def test_non_staff_cannot_see_or_cancel(client):
    run = waiting_run()
    client.force_login(
        make_user("outsider", "workflows.view_workflowrun", "workflows.manage_any_run", staff=False)
    )

    assert client.get(CHANGELIST).status_code == 302  # to the admin login
    response = client.post(cancel_url(run))
    assert response.status_code == 302 and "/login/" in response.url
    client.post(CHANGELIST, {"action": "cancel_runs", "_selected_action": [run.pk], "post": "yes"})
    assert refresh(run).status == RunStatus.WAITING


def test_staff_without_the_view_permission_sees_nothing(client):
    run = waiting_run()
    client.force_login(make_user("staff"))
    assert client.get(CHANGELIST).status_code == 403
    assert client.get(change_url(run)).status_code == 403
    assert client.post(cancel_url(run)).status_code == 403
    assert "Workflow runs" not in client.get(reverse("admin:index")).content.decode()


def test_staff_with_view_permission_sees_runs_but_cannot_cancel(viewer_client):
    # The view permission opens the runs admin, on the runs the user may see: their own here.
    run = waiting_run(created_by=User.objects.get(username="viewer"))
    waiting_run("someone-elses")

    listing = viewer_client.get(CHANGELIST)
    assert listing.status_code == 200 and listed_ids(listing) == {str(run.pk)}
    assert listing.context["action_form"] is None  # no actions offered
    page = viewer_client.get(change_url(run))
    assert page.status_code == 200 and "timeline" in page.context
    assert f'href="{cancel_url(run)}"' not in page.content.decode()

    assert viewer_client.get(cancel_url(run)).status_code == 403
    assert viewer_client.post(cancel_url(run)).status_code == 403
    viewer_client.post(
        CHANGELIST, {"action": "cancel_runs", "_selected_action": [run.pk], "post": "yes"}
    )
    assert refresh(run).status == RunStatus.WAITING


def test_manage_permission_alone_also_grants_viewing(client):
    run = waiting_run()
    client.force_login(make_user("ops", "workflows.manage_any_run"))
    assert client.get(change_url(run)).status_code == 200
    client.post(cancel_url(run))
    assert refresh(run).status == RunStatus.CANCELLED


# --- queries ----------------------------------------------------------------------------------


def changelist_queries(client) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(CHANGELIST)
    assert response.status_code == 200
    return len(queries)


def test_change_list_query_count_does_not_grow_with_rows(manager_client, settings):
    settings.HITL_FILTER_CHOICES_CACHE_SECONDS = 0  # count the filter's query on every page
    for i in range(5):
        waiting_run(f"q{i}")
    few = changelist_queries(manager_client)
    for i in range(5, 50):
        start("event-timeout", {"event_id": f"order-q{i}"})
    run_until_idle()
    assert WorkflowRun.objects.filter(status=RunStatus.WAITING).count() == 50

    many = changelist_queries(manager_client)

    assert many == few
    assert few <= 10  # session, user, permissions, the page, the filter: no per-row queries


def test_change_page_query_count_does_not_grow_with_steps(admin_client):
    small = start("counter", {"tag": "small"})
    run_until_idle()
    big = start("counter", {"tag": "big"})
    run_until_idle()
    notify("go-1-big")
    run_until_idle()
    notify("go-2-big")
    run_until_idle()
    assert big.steps.count() > small.steps.count()

    with CaptureQueriesContext(connection) as few:
        admin_client.get(change_url(small))
    with CaptureQueriesContext(connection) as many:
        admin_client.get(change_url(big))
    assert len(many) == len(few)


# --- the run's parts --------------------------------------------------------------------------


def test_waits_events_and_messages_are_listed_read_only(admin_client):
    run = waiting_run()
    notify("nobody-yet", {"x": 1})

    waits = admin_client.get(reverse("admin:workflows_waitpoint_changelist"))
    assert waits.status_code == 200 and "order-a" in waits.content.decode()
    messages = admin_client.get(
        reverse("admin:workflows_eventmessage_changelist"), {"delivered": "no"}
    )
    assert [m.event_id for m in messages.context["cl"].result_list] == ["nobody-yet"]
    events = admin_client.get(
        reverse("admin:workflows_runevent_changelist"), {"type": "run.waiting"}
    )
    assert [e.type for e in events.context["cl"].result_list] == ["run.waiting"]
    assert change_url(run) in events.content.decode()

    for model in (WaitPoint, EventMessage, RunEvent):
        name = model._meta.model_name
        assert admin_client.get(reverse(f"admin:workflows_{name}_add")).status_code == 403
        obj = model.objects.first()
        assert (
            admin_client.post(reverse(f"admin:workflows_{name}_change", args=[obj.pk])).status_code
            == 403
        )
        assert (
            admin_client.get(reverse(f"admin:workflows_{name}_delete", args=[obj.pk])).status_code
            == 403
        )


def test_run_event_list_query_count_is_constant(admin_client):
    waiting_run("e1")
    url = reverse("admin:workflows_runevent_changelist")
    with CaptureQueriesContext(connection) as few:
        admin_client.get(url)
    for i in range(10):
        waiting_run(f"e{i + 2}")
    with CaptureQueriesContext(connection) as many:
        admin_client.get(url)
    assert len(many) == len(few)
