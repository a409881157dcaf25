"""``manage.py hitl_rebuild_access``: derive every request's access rows again.

For requests written without them: by a worker still running a version before the access rows
while ``approvals.0005`` ran, or by a script that bulk-creates requests. Safe while the site
runs: each batch holds its requests' row locks, as the services do when they change assignees,
so a concurrent reassignment is either already in what the batch reads or written after it.
"""

from django.core.management.base import BaseCommand
from django.db import transaction

from approvals import access
from approvals.models import ApprovalRequest


class Command(BaseCommand):
    help = (
        "Rebuild who may see each approval request (its access rows) from its stages, audit, "
        "requester and run."
    )

    def handle(self, *args, **options) -> None:
        ids = list(ApprovalRequest.objects.order_by("pk").values_list("pk", flat=True))
        for start in range(0, len(ids), access.BATCH):
            batch = ids[start : start + access.BATCH]
            with transaction.atomic():
                locked = ApprovalRequest.objects.select_for_update().filter(pk__in=batch)
                list(locked.order_by("pk").values_list("pk", flat=True))
                access.rebuild(batch)
        self.stdout.write(f"Rebuilt the access rows of {len(ids)} approval requests.")
