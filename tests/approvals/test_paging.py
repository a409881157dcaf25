"""Paging through long queues: the admin list and the review page choose a page's keys first
and read those rows afterwards (hitlproject.pagination.KeysFirstPaginator). What a reviewer
sees must be exactly what one sorted read would show: every row once, in queue order, with
its columns."""

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse

from approvals.models import ApprovalRequest
from approvals.selectors import approval_queue_for
from approvals.services import approval_decide
from hitlproject.pagination import KeysFirstPaginator

from .test_admin_queue import CHANGELIST, bulk_requests, staff

pytestmark = pytest.mark.django_db


@pytest.fixture
def queue(people):
    """120 pending requests for the reviewers, half of them overdue (bulk_requests)."""
    bulk_requests(120, group=Group.objects.get(name="reviewers"), requester=people.requester)
    return [a.title for a in approval_queue_for(people.ann)]


def test_admin_pages_show_every_request_once_in_queue_order(client, people, queue):
    client.force_login(staff(people.ann))
    shown, overdue = [], []
    for page in (1, 2, 3):
        rows = client.get(CHANGELIST, {"p": page}).context["cl"].result_list
        shown += [row.title for row in rows]
        overdue += [row.is_overdue for row in rows]
    assert len(queue) == 120 and shown == queue
    # Most urgent first: the 60 overdue requests, then the others.
    assert overdue == [True] * 60 + [False] * 60


def test_admin_rows_carry_their_columns(client, people, queue):
    client.force_login(staff(people.ann))
    body = client.get(CHANGELIST, {"p": 2}).content.decode()
    # Page 2 of 50: ten overdue rows, then the rest; each names its group.
    assert body.count('class="hitl-overdue"') == 10
    assert body.count("group reviewers") == 50


def test_review_pages_show_every_request_once_in_queue_order(client, people, queue):
    client.force_login(people.ann)
    shown = []
    for page in range(1, 6):  # 25 a page
        rows = client.get(reverse("review:queue"), {"page": page}).context["rows"]
        shown += [approval.title for approval, _progress in rows]
    assert shown == queue


def test_a_row_the_reader_no_longer_finds_is_left_out(people, queue):
    # Audit records protect requests from deletion, but a reader may narrow further (or a
    # purge may run between the reads): the page is one row short, the rest in order.
    requests = approval_queue_for(people.ann)
    gone = requests.first().pk

    def reader(keys):
        return ApprovalRequest.objects.filter(pk__in=keys).exclude(pk=gone)

    page = KeysFirstPaginator(requests, 10, rows=reader).page(1)
    assert [a.title for a in page] == queue[1:10]


def test_by_default_rows_are_read_through_the_list_itself(people, queue):
    # Without a reader the page's rows pass the list's filters again: a request that left
    # the queue between the reads (approved meanwhile) is not shown as if it were waiting.
    requests = approval_queue_for(people.ann)
    keys = list(requests.values_list("pk", flat=True)[:10])
    approval_decide(request=keys[0], actor=people.bob, action="approve")
    read = KeysFirstPaginator(requests, 10).rows(keys)
    assert sorted(a.pk for a in read) == sorted(keys[1:])


# --- the expected page's keys and the total in one query ----------------------------------


def read_page(paginator, number):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        count, page = paginator.count, paginator.page(number)
        titles = [a.title for a in page]
    return count, titles, len(queries)


def test_the_expected_page_comes_with_the_total_in_one_query(people, queue):
    requests = approval_queue_for(people.ann)
    plain = read_page(KeysFirstPaginator(requests, 25), 2)
    ahead = read_page(KeysFirstPaginator(requests, 25, expected_page="2"), 2)
    assert ahead[:2] == plain[:2] == (120, queue[25:50])
    assert ahead[2] == plain[2] - 1  # the COUNT query is gone; keys and rows remain
    # The last page, short of a full page: the total still comes with it.
    assert read_page(KeysFirstPaginator(requests, 25, expected_page=5), 5)[:2] == (
        120,
        queue[100:],
    )


def test_another_page_than_the_expected_one_is_read_by_itself(people, queue):
    paginator = KeysFirstPaginator(approval_queue_for(people.ann), 25, expected_page=1)
    assert paginator.count == 120
    assert [a.title for a in paginator.page(3)] == queue[50:75]
    assert [a.title for a in paginator.page(1)] == queue[:25]


HUGE = "9" * 23  # its OFFSET does not fit in a bigint


@pytest.mark.parametrize("expected", ["99", "0", "-1", HUGE, "two", "\u00b2", None, ""])
def test_a_page_number_out_of_range_or_invalid_counts_separately(people, queue, expected):
    paginator = KeysFirstPaginator(approval_queue_for(people.ann), 25, expected_page=expected)
    assert paginator.count == 120 and paginator.num_pages == 5
    assert [a.title for a in paginator.get_page(expected)] == (
        # Django's get_page: out of range gives the last page, not a number the first.
        queue[100:] if expected in ("99", "0", "-1", HUGE) else queue[:25]
    )


def test_a_huge_page_number_shows_the_last_page_of_the_review_queue(client, people, queue):
    client.force_login(people.ann)
    response = client.get(reverse("review:queue"), {"page": HUGE})
    assert response.status_code == 200
    assert [approval.title for approval, _ in response.context["rows"]] == queue[100:]


def test_a_huge_page_number_in_the_admin_queue_is_out_of_range_like_any_other(
    client, people, queue
):
    client.force_login(staff(people.ann))
    # The admin's own answer to a page past the end: back to the list with ?e=1.
    for page in ("99", HUGE):
        response = client.get(CHANGELIST, {"p": page})
        assert (response.status_code, response["Location"]) == (302, f"{CHANGELIST}?e=1")


def test_orphans_join_the_expected_page(people, queue):
    # 120 rows, 50 a page with 20 orphans allowed: page 2 takes the last 70.
    paginator = KeysFirstPaginator(approval_queue_for(people.ann), 50, orphans=20, expected_page=2)
    assert paginator.count == 120 and paginator.num_pages == 2
    assert [a.title for a in paginator.page(2)] == queue[50:]


def test_a_distinct_list_is_counted_without_duplicates(people, queue):
    # A join through the stage's groups can repeat a request; DISTINCT removes the repeats
    # after a window count would have counted them, so such lists count separately.
    Group.objects.create(name="auditors")
    for request in ApprovalRequest.objects.all()[:10]:
        request.current_stage.groups.add(Group.objects.get(name="auditors"))
    listed = (
        ApprovalRequest.objects.filter(current_stage__groups__name__in=["reviewers", "auditors"])
        .distinct()
        .order_by("-created_at")
    )
    paginator = KeysFirstPaginator(listed, 50, expected_page=1)
    assert paginator.count == 120
    assert len({a.pk for a in paginator.page(1)}) == 50
