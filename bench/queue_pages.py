"""Page time and query count of the reviewer queues with many pending approvals.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/hitl .venv/bin/python bench/queue_pages.py
    .venv/bin/python bench/queue_pages.py --rows 20000 --repeat 10   # smaller, or on SQLite

Works in a throw-away test database (``test_<name>``, created and dropped here), so it never
touches real data. Rows are bulk-created directly (runs, waits, requests, stages, group
assignments, audit records): the engine would take hours to create 100,000 real ones, and the
pages only read these rows. Half the requests are overdue. ``--history N`` adds N decided
requests (approved, same group): the past a real queue has to skip. Each page is fetched
in-process with Django's test client (no network), ``--repeat`` times after one warm-up; the
p50 and the number of SQL queries are printed. ``--baseline`` also times every page with
Django's plain ``Paginator`` (whole rows sorted for a page) interleaved with the project's
``KeysFirstPaginator`` and prints the ratio. Not part of the test suite.
"""

import argparse
import os
import statistics
import sys
import time
import uuid
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hitlproject.settings")

# A standalone script: Django is set up before anything imports a model, so the imports
# below follow it (E402 on each).
import django  # noqa: E402

django.setup()

from django.contrib.auth.models import Group, Permission, User  # noqa: E402
from django.db import connection  # noqa: E402
from django.db.models import OuterRef, Subquery  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import setup_test_environment, teardown_test_environment  # noqa: E402

from approvals import access, queue  # noqa: E402
from approvals.models import (  # noqa: E402
    Action,
    ApprovalRequest,
    ApprovalStage,
    ApprovalStatus,
    Channel,
    DecisionRecord,
    StageStatus,
)
from workflows import clock  # noqa: E402
from workflows.models import RunStatus, WaitKind, WaitPoint, WorkflowRun  # noqa: E402

BATCH = 5000


def create_requests(
    count: int, group: Group, requester: User, *, decided: bool = False, older_by: int = 0
) -> None:
    """``count`` pending requests (or, with ``decided``, approved ones: history that the queue
    must skip; same group, same shape, their stage approved and their run completed), one a
    minute going back from ``older_by`` minutes ago."""
    if count <= 0:
        return
    what = "decided" if decided else "pending"
    print(f"{connection.vendor}: creating {count} {what} approvals...")
    started = time.perf_counter()
    now = clock.now()
    for start in range(0, count, BATCH):
        size = min(BATCH, count - start)
        runs = WorkflowRun.objects.bulk_create(
            WorkflowRun(
                workflow_name="bench-approval" if i % 3 else "bench-expense",
                workflow_version=1,
                status=RunStatus.COMPLETED if decided else RunStatus.WAITING,
                created_by=requester,
            )
            for i in range(size)
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
                title=f"Expense {start + i}",
                payload={"amount": start + i},
                value={"amount": start + i},
                requester=requester,
                requester_name=requester.username,
                status=ApprovalStatus.APPROVED if decided else ApprovalStatus.PENDING,
                decided_at=now if decided else None,
                created_at=now - timedelta(minutes=older_by + start + i),
                updated_at=now,
            )
            for i, (run, wait) in enumerate(zip(runs, waits, strict=True))
        )
        stages = ApprovalStage.objects.bulk_create(
            ApprovalStage(
                request=request,
                order=0,
                name="review" if i % 2 else "finance",
                status=StageStatus.APPROVED if decided else StageStatus.OPEN,
                opened_at=now,
                deadline=now + timedelta(hours=1 if i % 2 else -1),
            )
            for i, request in enumerate(requests)
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
                actor=requester,
                actor_name=requester.username,
                action=Action.CREATE,
                channel=Channel.SYSTEM,
                created_at=now,
            )
            for request in requests
        )
        access.rebuild(r.pk for r in requests)  # who may see them, as the services record it
        queue.rebuild(r.pk for r in requests)  # whom they wait for, and until when
        print(f"  {start + size:>7} {what} approvals", end="\r", flush=True)
    print(f"\n  created in {time.perf_counter() - started:.0f} s")


def measure(
    client: Client, url: str, repeat: int, explain: bool, with_baseline: bool
) -> tuple[float, int, int, float | None]:
    response = client.get(url)  # warm-up
    assert response.status_code == 200, (url, response.status_code)
    queries = []

    def count(execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            queries.append(((time.perf_counter() - started) * 1000, sql))

    with connection.execute_wrapper(count):
        client.get(url)
    if explain:
        for took, sql in sorted(queries, reverse=True)[:4]:
            print(f"    {took:8.1f} ms  {sql[:300]}")
    times, baseline = [], []
    for _ in range(repeat):
        started = time.perf_counter()
        response = client.get(url)
        times.append((time.perf_counter() - started) * 1000)
        if with_baseline:  # interleaved, so both see the same load on a shared host
            with plain_paginator():
                started = time.perf_counter()
                client.get(url)
                baseline.append((time.perf_counter() - started) * 1000)
    median = statistics.median(baseline) if baseline else None
    return statistics.median(times), len(queries), len(response.content), median


@contextmanager
def plain_paginator():
    """The baseline for --baseline: Django's own Paginator (whole rows sorted for a page)
    instead of KeysFirstPaginator, in the admin queue and the review page."""
    from django.contrib import admin
    from django.core.paginator import Paginator

    import approvals.review.views as review_views
    from approvals.admin import ApprovalRequestAdmin

    saved = ApprovalRequestAdmin.get_paginator, review_views.KeysFirstPaginator
    ApprovalRequestAdmin.get_paginator = admin.ModelAdmin.get_paginator
    review_views.KeysFirstPaginator = lambda queryset, per_page, **_: Paginator(queryset, per_page)
    try:
        yield
    finally:
        ApprovalRequestAdmin.get_paginator, review_views.KeysFirstPaginator = saved


def pages(rows: int) -> list[tuple[str, str]]:
    admin = "/admin/approvals/approvalrequest/"
    middle_admin, middle_review = max(1, rows // 100), max(1, rows // 50)  # 50 and 25 per page
    return [
        ("admin queue: waiting for me (default)", admin),
        ("admin queue: all, newest first", f"{admin}?queue=all"),
        # Half the stages are "finance", and those are the overdue half: 50,000 rows match.
        (
            "admin queue: all, overdue + stage filter",
            f"{admin}?queue=all&overdue=yes&stage=finance",
        ),
        ("admin queue: search by title", f"{admin}?queue=all&q=Expense+4242"),
        (f"admin queue: all, page {middle_admin}", f"{admin}?queue=all&p={middle_admin}"),
        ("review queue: first page", "/review/"),
        ("review queue: overdue", "/review/?scope=overdue"),
        (f"review queue: page {middle_review}", f"/review/?page={middle_review}"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument(
        "--history",
        type=int,
        default=0,
        help="decided requests besides the pending ones (a queue with a past)",
    )
    parser.add_argument(
        "--keepdb", action="store_true", help="keep the test database and reuse its rows"
    )
    parser.add_argument("--explain", action="store_true", help="print each query's time")
    parser.add_argument(
        "--baseline",
        action="store_true",
        help="also time each page with Django's plain Paginator, interleaved, and the ratio",
    )
    args = parser.parse_args()

    setup_test_environment()
    old_name = connection.settings_dict["NAME"]
    # serialize=False: Django would otherwise read every row into one JSON string (for test
    # cases' serialized rollback), minutes with a kept database of a few hundred thousand rows.
    connection.creation.create_test_db(
        verbosity=0, autoclobber=True, serialize=False, keepdb=args.keepdb
    )
    try:
        reviewers, _ = Group.objects.get_or_create(name="reviewers")
        requester = User.objects.filter(username="requester").first() or User.objects.create_user(
            "requester"
        )
        ann = User.objects.filter(username="ann").first() or User.objects.create_user(
            "ann", is_staff=True
        )
        ann.groups.add(reviewers)
        ann.user_permissions.add(Permission.objects.get(codename="view_approvalrequest"))
        pending = ApprovalRequest.objects.filter(status=ApprovalStatus.PENDING).count()
        decided = ApprovalRequest.objects.count() - pending
        # The past first, as in a real queue: decided requests are the older rows (lower ids,
        # earlier pages of the tables) and the pending ones the newest.
        create_requests(
            args.history - decided, reviewers, requester, decided=True, older_by=args.rows
        )
        create_requests(args.rows - pending, reviewers, requester)
        # Deadlines are an hour either side of *now*: re-anchored on every run, or a database
        # kept (--keepdb) for more than an hour would have every request overdue.
        now = clock.now()
        stages = ApprovalStage.objects.filter(status=StageStatus.OPEN)
        for name, deadline in (
            ("finance", now - timedelta(hours=1)),
            ("review", now + timedelta(hours=1)),
        ):
            stages.filter(name=name).update(deadline=deadline)
            # What approvals.queue keeps beside the stage (one UPDATE rather than a rebuild).
            ApprovalRequest.objects.filter(
                status=ApprovalStatus.PENDING, current_stage__name=name
            ).update(due_at=deadline)
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("VACUUM ANALYZE")
        client = Client()
        client.force_login(ann)
        extra = f" {'plain ms':>9} {'ratio':>6}" if args.baseline else ""
        print(f"\n{'page':<44} {'p50 ms':>8} {'queries':>8} {'KiB':>6}{extra}")
        for label, url in pages(args.rows):
            p50, queries, size, plain = measure(
                client, url, args.repeat, args.explain, args.baseline
            )
            extra = f" {plain:>9.1f} {p50 / plain:>6.2f}" if plain else ""
            print(f"{label:<44} {p50:>8.1f} {queries:>8} {size / 1024:>6.0f}{extra}")
    finally:
        if not args.keepdb:
            connection.creation.destroy_test_db(old_name, verbosity=0)
        teardown_test_environment()


if __name__ == "__main__":
    main()
