"""The approval queue in the admin: the default "waiting for me" view, filters, search, the
request page with its decision forms, bulk decisions through a confirmation page, permissions,
and a query count that does not grow with the rows."""

import uuid
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, Permission
from django.db import connection
from django.db.models import OuterRef, Subquery
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from approvals import access, queue
from approvals.models import (
    Action,
    ApprovalRequest,
    ApprovalStage,
    ApprovalStatus,
    Channel,
    DecisionRecord,
    StageStatus,
)
from approvals.selectors import search_q
from workflows import clock, start
from workflows.models import RunStatus, WaitKind, WaitPoint, WorkflowRun
from workflows.testing import run_until_idle

from .conftest import make_user

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:approvals_approvalrequest_changelist")


def staff(user, *perms):
    user.is_staff = True
    user.save()
    for codename in ("view_approvalrequest", *perms):
        user.user_permissions.add(Permission.objects.get(codename=codename))
    return type(user).objects.get(pk=user.pk)


def request_for(people, **data):
    data.setdefault("requester", people.requester.username)
    run = start("approvals-simple", data)
    run_until_idle()
    return ApprovalRequest.objects.get(run=run)


def change_url(approval):
    return reverse("admin:approvals_approvalrequest_change", args=[approval.pk])


def decide_url(approval):
    return reverse("admin:approvals_approvalrequest_decide", args=[approval.pk])


def titles(response):
    """The titles in the list's rows, in order."""
    return [row.title for row in response.context["cl"].result_list]


@pytest.fixture
def ann(people):
    return staff(people.ann)


@pytest.fixture
def boss(people):
    return staff(people.boss)


@pytest.fixture
def board(people):
    """Requests in several states: two for reviewers (one overdue), one for finance, one
    already approved, one cancelled with its run."""
    refund = request_for(people, title="Refund order 7")
    late = request_for(people, title="Late laptop")
    ApprovalStage.objects.filter(pk=late.current_stage_id).update(
        deadline=clock.now() - timedelta(hours=2)
    )
    queue.rebuild([late.pk])  # the request's due_at follows, as the services would keep it
    finance = request_for(people, title="Finance budget", groups=["finance"])
    done = request_for(people, title="Done already")
    from approvals.services import approval_decide

    approval_decide(request=done, actor=people.bob, action="approve")
    return {"refund": refund, "late": late, "finance": finance, "done": done}


# --- the list -------------------------------------------------------------------------------


def test_the_queue_opens_on_what_waits_for_me_most_urgent_first(client, ann, board):
    client.force_login(ann)
    response = client.get(CHANGELIST)
    assert response.status_code == 200
    assert titles(response) == ["Late laptop", "Refund order 7"]
    body = response.content.decode()
    assert "Waiting for me" in body and "overdue" in body
    assert "review waiting 0 of 1" in body and "group reviewers" in body
    # "All I may see": what ann may read, not only what waits for her.
    everything = titles(client.get(CHANGELIST, {"queue": "all"}))
    assert set(everything) == {"Late laptop", "Refund order 7", "Done already"}


def test_filters_status_stage_workflow_assignee_overdue(client, people, boss, board):
    client.force_login(boss)  # decide_any: sees every request
    everything = {"queue": "all"}
    assert set(titles(client.get(CHANGELIST, {**everything, "status": "approved"}))) == {
        "Done already"
    }
    assert set(titles(client.get(CHANGELIST, {**everything, "stage": "review"}))) == {
        "Refund order 7",
        "Late laptop",
        "Finance budget",
    }
    assert titles(client.get(CHANGELIST, {**everything, "stage": "nope"})) == []
    assert len(titles(client.get(CHANGELIST, {**everything, "workflow": "approvals-simple"}))) == 4
    assert titles(client.get(CHANGELIST, {**everything, "workflow": "other"})) == []
    fay = people.fay.pk  # finance only
    assert titles(client.get(CHANGELIST, {**everything, "assignee": fay})) == ["Finance budget"]
    assert titles(client.get(CHANGELIST, {**everything, "overdue": "yes"})) == ["Late laptop"]
    assert "Late laptop" not in titles(client.get(CHANGELIST, {**everything, "overdue": "no"}))
    # Nonsense in the query string is ignored or refused by the admin, never a 500.
    assert client.get(CHANGELIST, {**everything, "assignee": "x'--"}).status_code == 200
    assert client.get(CHANGELIST, {**everything, "status": "bogus"}).status_code in (200, 302)


def test_search_by_title_run_id_and_requester(client, people, boss, board):
    client.force_login(boss)
    search = {"queue": "all"}
    assert titles(client.get(CHANGELIST, {**search, "q": "laptop"})) == ["Late laptop"]
    run_prefix = str(board["finance"].run_id)[:8]
    assert titles(client.get(CHANGELIST, {**search, "q": run_prefix})) == ["Finance budget"]
    full_id = str(board["refund"].run_id)
    assert titles(client.get(CHANGELIST, {**search, "q": full_id})) == ["Refund order 7"]
    other = request_for(people, title="From ceo", requester="ceo")
    assert titles(client.get(CHANGELIST, {**search, "q": "ceo"})) == [other.title]
    # Any part of the run id, not only its beginning.
    middle = str(board["finance"].run_id)[9:18]
    assert titles(client.get(CHANGELIST, {**search, "q": middle})) == ["Finance budget"]


def test_search_words_must_all_match_and_quotes_keep_a_phrase(client, people, boss, board):
    client.force_login(boss)
    search = {"queue": "all"}
    assert set(titles(client.get(CHANGELIST, {**search, "q": "order"}))) == {"Refund order 7"}
    assert titles(client.get(CHANGELIST, {**search, "q": "refund 7"})) == ["Refund order 7"]
    assert titles(client.get(CHANGELIST, {**search, "q": "refund laptop"})) == []
    assert titles(client.get(CHANGELIST, {**search, "q": '"order 7"'})) == ["Refund order 7"]
    assert titles(client.get(CHANGELIST, {**search, "q": '"7 order"'})) == []
    # A NUL character cannot reach PostgreSQL: the admin's search form refuses it, and
    # search_q drops it for any other caller.
    assert client.get(CHANGELIST, {**search, "q": "lap\x00top"}).status_code == 200
    found = ApprovalRequest.objects.filter(search_q("lap\x00top"))
    assert [a.title for a in found] == ["Late laptop"]


def test_search_finds_a_requester_by_their_current_username_after_a_rename(
    client, people, boss, board
):
    client.force_login(boss)
    mine = request_for(people, title="Renamed requester's", requester="ceo")
    people.ceo.username = "chief"
    people.ceo.save()
    search = {"queue": "all"}
    assert titles(client.get(CHANGELIST, {**search, "q": "chief"})) == [mine.title]
    assert titles(client.get(CHANGELIST, {**search, "q": "ceo"})) == [mine.title]  # as recorded


@pytest.mark.skipif(connection.vendor != "postgresql", reason="trigram indexes: PostgreSQL only")
def test_each_search_alternative_can_be_read_from_a_trigram_index(people, board):
    # The indexes of migration 0007 must match the SQL Django writes for icontains, or
    # PostgreSQL scans every request again. Sequential scans off: can it use them at all?
    query = ApprovalRequest.objects.filter(search_q("laptop")).order_by().values("pk").query
    sql, params = query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("EXPLAIN " + sql, params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    for index in ("approval_title_trgm", "approval_requester_trgm", "approval_run_trgm"):
        assert index in plan, plan


# --- the request page -----------------------------------------------------------------------


def test_the_request_page_shows_payload_progress_history_and_forms(client, ann, board):
    client.force_login(ann)
    body = client.get(change_url(board["refund"])).content.decode()
    assert "&quot;amount&quot;: 100" in body
    assert "review waiting 0 of 1" in body
    assert 'id="hitl-history"' in body and "Created" in body
    assert 'id="approve-form"' in body and 'id="reject-form"' in body
    assert f'data-live-socket="/ws/runs/{board["refund"].run_id}/"' in body
    done = client.get(change_url(board["done"])).content.decode()
    assert "Nothing left to decide" in done and "bob" in done


def test_decisions_from_the_request_page_go_through_the_service(client, ann, board):
    client.force_login(ann)
    approval = board["refund"]
    refused = client.post(decide_url(approval), {"action": "reject", "reject-comment": ""})
    assert (
        refused.status_code == 400 and "A reason is required to reject." in refused.content.decode()
    )
    assert ApprovalRequest.objects.get(pk=approval.pk).status == ApprovalStatus.PENDING

    response = client.post(
        decide_url(approval),
        {
            "action": "approve",
            "approve-stage": approval.current_stage_id,
        },
    )
    assert response.status_code == 302 and response["Location"] == change_url(approval)
    record = DecisionRecord.objects.get(request=approval, action=Action.APPROVE)
    assert (record.actor, record.channel) == (ann, Channel.ADMIN)
    run_until_idle()
    body = client.get(change_url(approval)).content.decode()
    assert "Workflow finished" in body


def test_edit_in_the_admin_previews_the_diff(client, people, ann):
    schema = {
        "type": "object",
        "properties": {"amount": {"type": "integer"}, "note": {"type": "string"}},
    }
    payload = {"amount": 100, "note": ""}
    approval = request_for(people, editable=True, schema=schema, payload=payload)
    client.force_login(ann)
    preview = client.post(
        decide_url(approval), {"action": "edit-preview", "edit-amount": "80", "edit-note": ""}
    )
    body = preview.content.decode()
    assert preview.status_code == 200 and "<del>100</del>" in body and "<ins>80</ins>" in body
    assert [change["path"] for change in preview.context["preview"][0]] == ["amount"]
    assert ApprovalRequest.objects.get(pk=approval.pk).status == ApprovalStatus.PENDING
    confirm = client.post(
        decide_url(approval), {"action": "edit-confirm", "value": '{"amount": 80}'}
    )
    assert confirm.status_code == 302
    approval.refresh_from_db()
    assert approval.value == {"amount": 80} and approval.status == ApprovalStatus.APPROVED


# --- permissions ----------------------------------------------------------------------------


def test_non_staff_and_staff_without_permission_get_no_queue(client, people, board):
    client.force_login(people.ann)  # an assignee, but not staff
    response = client.get(CHANGELIST)
    assert response.status_code == 302 and "login" in response["Location"]
    response = client.post(decide_url(board["refund"]), {"action": "approve"})
    assert response.status_code == 302 and "login" in response["Location"]
    bare = make_user("bare")
    bare.is_staff = True
    bare.save()
    client.force_login(bare)
    assert client.get(CHANGELIST).status_code == 403
    assert client.post(decide_url(board["refund"]), {"action": "approve"}).status_code == 403
    assert ApprovalRequest.objects.get(pk=board["refund"].pk).status == ApprovalStatus.PENDING


def test_staff_who_are_not_assignees_cannot_decide(client, people, board):
    dora = staff(make_user("dora", "reviewers"))
    client.force_login(staff(people.fay))  # finance: the refund is not hers
    response = client.post(decide_url(board["refund"]), {"action": "approve"})
    # Not visible to her at all: the admin's "does not exist" redirect, nothing decided.
    assert response.status_code == 302 and response["Location"].startswith(reverse("admin:index"))
    # A reviewer who requested the request sees it and is refused by the four-eyes rule.
    own = request_for(people, title="Dora's own", requester="dora")
    client.force_login(dora)
    response = client.post(decide_url(own), {"action": "approve"})
    assert response.status_code == 403 and "four-eyes" in response.content.decode()
    for approval in (board["refund"], own):
        assert ApprovalRequest.objects.get(pk=approval.pk).status == ApprovalStatus.PENDING


# --- bulk decisions -------------------------------------------------------------------------


def bulk_post(approvals, action, **extra):
    return {
        "action": action,
        "_selected_action": [str(a.pk) for a in approvals],
        **extra,
    }


def test_bulk_approve_lists_what_will_be_decided_and_skipped_then_decides(
    client, people, ann, board
):
    own = request_for(people, title="Ann's own", requester="ann")
    selected = [board["refund"], board["late"], board["done"], own]
    client.force_login(ann)
    url = f"{CHANGELIST}?queue=all"
    page = client.post(url, bulk_post(selected, "approve_selected"))
    assert page.status_code == 200
    body = page.content.decode()
    assert [a.title for a, _ in page.context["chosen"]] == ["Refund order 7", "Late laptop"]
    assert {a.title: why for a, why in page.context["skipped"]} == {
        "Done already": "already approved",
        "Ann's own": "you requested it (four-eyes rule)",
    }
    assert "Yes, approve 2 requests" in body
    # Nothing is decided by the confirmation page.
    assert ApprovalRequest.objects.filter(status=ApprovalStatus.PENDING).count() == 4

    done = client.post(url, bulk_post(selected, "approve_selected", post="yes"), follow=True)
    statuses = dict(ApprovalRequest.objects.values_list("title", "status"))
    assert statuses["Refund order 7"] == statuses["Late laptop"] == ApprovalStatus.APPROVED
    assert statuses["Ann's own"] == ApprovalStatus.PENDING
    assert set(
        DecisionRecord.objects.filter(actor=ann, action=Action.APPROVE).values_list(
            "channel", flat=True
        )
    ) == {Channel.ADMIN}
    messages = [str(m) for m in done.context["messages"]]
    assert any(m.startswith("Approved 2: ") for m in messages)
    assert "Skipped Ann's own: you requested it (four-eyes rule)." in messages


def test_bulk_reject_needs_a_reason_and_reports_what_the_service_refused(
    client, people, ann, board
):
    client.force_login(ann)
    url = f"{CHANGELIST}?queue=all"
    selected = [board["refund"], board["late"]]
    missing = client.post(url, bulk_post(selected, "reject_selected", post="yes", reason=" "))
    assert missing.status_code == 200
    assert "A reason is required to reject." in missing.content.decode()
    assert not ApprovalRequest.objects.filter(status=ApprovalStatus.REJECTED).exists()

    # Bob decides one of them after ann's confirmation page was shown: the service refuses it.
    from approvals.services import approval_decide

    approval_decide(request=board["late"], actor=people.bob, action="approve")
    response = client.post(
        url, bulk_post(selected, "reject_selected", post="yes", reason="Out of budget"), follow=True
    )
    refund = ApprovalRequest.objects.get(pk=board["refund"].pk)
    assert (refund.status, refund.reason) == (ApprovalStatus.REJECTED, "Out of budget")
    assert ApprovalRequest.objects.get(pk=board["late"].pk).status == ApprovalStatus.APPROVED
    messages = [str(m) for m in response.context["messages"]]
    assert "Skipped Late laptop: already approved." in messages


def test_the_preview_follows_assignment_and_status(client, people, board):
    carl = staff(make_user("carol", "finance"))
    client.force_login(carl)
    page = client.post(f"{CHANGELIST}?queue=all", bulk_post([board["finance"]], "approve_selected"))
    assert [a.title for a, _ in page.context["chosen"]] == ["Finance budget"]
    client.force_login(staff(people.outsider, "decide_any"))
    page = client.post(f"{CHANGELIST}?queue=all", bulk_post([board["done"]], "approve_selected"))
    assert page.context["chosen"] == [] and "Nothing to do" in page.content.decode()


# --- constant query count -------------------------------------------------------------------


def bulk_requests(count, *, group, requester, title="Bulk"):
    """``count`` pending requests with one open stage for ``group``, written directly (the
    engine would take minutes for a thousand runs; the list only reads these rows)."""
    now = clock.now()
    runs = WorkflowRun.objects.bulk_create(
        WorkflowRun(
            workflow_name="bulk-approval",
            workflow_version=1,
            status=RunStatus.WAITING,
            created_by=requester,
        )
        for _ in range(count)
    )
    waits = WaitPoint.objects.bulk_create(
        WaitPoint(id=uuid.uuid4(), run=run, sequence=0, kind=WaitKind.APPROVAL, key="approve")
        for run in runs
    )
    requests = ApprovalRequest.objects.bulk_create(
        ApprovalRequest(
            run=run,
            wait=wait,
            key="approve",
            title=f"{title} {index}",
            payload={"amount": index},
            value={"amount": index},
            requester=requester,
            requester_name=requester.username,
            created_at=now - timedelta(minutes=index),
            updated_at=now,
        )
        for index, (run, wait) in enumerate(zip(runs, waits, strict=True))
    )
    stages = ApprovalStage.objects.bulk_create(
        ApprovalStage(
            request=request,
            order=0,
            name="review",
            status=StageStatus.OPEN,
            opened_at=now,
            deadline=now + timedelta(hours=1 if index % 2 else -1),
        )
        for index, request in enumerate(requests)
    )
    ApprovalStage.groups.through.objects.bulk_create(
        ApprovalStage.groups.through(approvalstage_id=stage.pk, group_id=group.pk)
        for stage in stages
    )
    # One UPDATE: bulk_update() builds a CASE with a branch per row, slow at this size.
    first_stage = ApprovalStage.objects.filter(request=OuterRef("pk"), order=0).values("pk")[:1]
    ApprovalRequest.objects.filter(pk__in=[r.pk for r in requests]).update(
        current_stage=Subquery(first_stage)
    )
    DecisionRecord.objects.bulk_create(
        DecisionRecord(
            request=request,
            stage=None,
            actor=requester,
            actor_name=requester.username,
            action=Action.CREATE,
            channel=Channel.SYSTEM,
            created_at=now,
        )
        for request in requests
    )
    access.rebuild(r.pk for r in requests)  # who may see them, as the services would record
    queue.rebuild(r.pk for r in requests)  # whom they wait for, and until when


def count_queries(client, params):
    with CaptureQueriesContext(connection) as captured:
        response = client.get(CHANGELIST, params)
    assert response.status_code == 200
    return len(captured), len(response.context["cl"].result_list)


@pytest.mark.parametrize("params", [{}, {"queue": "all"}, {"queue": "all", "q": "Bulk"}])
def test_the_list_costs_the_same_queries_for_60_and_1000_rows(
    client, people, ann, params, settings
):
    settings.HITL_FILTER_CHOICES_CACHE_SECONDS = 0  # count the filters' queries on every page
    reviewers = Group.objects.get(name="reviewers")
    client.force_login(ann)
    # Two pages already: a list of one page is read in one go, without choosing keys first.
    bulk_requests(60, group=reviewers, requester=people.requester)
    few, shown_few = count_queries(client, params)
    bulk_requests(940, group=reviewers, requester=people.requester)
    many, shown_many = count_queries(client, params)
    assert shown_few == 50 and shown_many == 50  # a page of 50
    assert many == few
