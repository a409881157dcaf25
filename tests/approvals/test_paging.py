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
