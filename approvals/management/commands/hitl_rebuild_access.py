"""``manage.py hitl_rebuild_access``: derive every request's access rows and queue entries again.

For requests written without them: by a worker still running a version before the access rows
(``approvals.0005``) or the queue entries (``approvals.0009``) while the migration ran, or by a
script that bulk-creates requests. Safe while the site
runs: each batch holds its requests' row locks, as the services do when they change assignees,
so a concurrent reassignment is either already in what the batch reads or written after it.
"""

from django.core.management.base import BaseCommand
from django.db import transaction

from approvals import access, queue
from approvals.batching import batches
from approvals.models import ApprovalRequest


class Command(BaseCommand):
    help = (
        "Rebuild who may see each approval request (its access rows) and whom it waits for "
        "(its queue entries and due time) from its stages, audit, requester and run."
    )

    def handle(self, *args, **options) -> None:
        ids = list(ApprovalRequest.objects.order_by("pk").values_list("pk", flat=True))
        for batch in batches(ids):
            with transaction.atomic():
                locked = ApprovalRequest.objects.select_for_update().filter(pk__in=batch)
                list(locked.order_by("pk").values_list("pk", flat=True))
                access.rebuild(batch)
                queue.rebuild(batch)
        self.stdout.write(
            f"Rebuilt the access rows and queue entries of {len(ids)} approval requests."
        )
