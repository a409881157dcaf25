"""Queue entries and ``due_at`` for the requests that are pending (``QueueEntry``, created by
0008): the same facts ``approvals.queue.rebuild`` derives (the open stage's users, groups and
claimer, and its deadline), read through the historical models and written in batches.

A migration of its own: on PostgreSQL a table's foreign keys are checked at commit, and the
rows inserted here would make 0008's closing ALTER TABLE statements fail in its transaction."""

from django.db import migrations
from django.db.models import OuterRef, Subquery

BATCH = 5000


def backfill(apps, schema_editor):
    Request = apps.get_model("approvals", "ApprovalRequest")
    Stage = apps.get_model("approvals", "ApprovalStage")
    Entry = apps.get_model("approvals", "QueueEntry")
    # A pending request's one open stage is its current stage (the services keep it so).
    open_stage = {"approvalstage__status": "open", "approvalstage__request__status": "pending"}
    # order_by(): the stages' default ordering would join the requests into the subquery.
    deadline = Stage.objects.filter(pk=OuterRef("current_stage_id")).order_by().values("deadline")
    Request.objects.filter(status="pending", current_stage__status="open").update(
        due_at=Subquery(deadline)
    )
    stage_users = Stage._meta.get_field("users").remote_field.through.objects
    stage_groups = Stage._meta.get_field("groups").remote_field.through.objects
    sources = [
        (stage_users.filter(**open_stage), "approvalstage__request_id", "user_id", {}),
        (stage_groups.filter(**open_stage), "approvalstage__request_id", "group_id", {}),
        (
            Stage.objects.filter(
                status="open", request__status="pending", claimed_by__isnull=False
            ),
            "request_id",
            "user_id",
            {"claimed": True},
        ),
    ]
    for rows, request, who, extra in sources:
        column = "claimed_by_id" if extra else who
        batch = []
        for request_id, who_id in rows.values_list(request, column).iterator(BATCH):
            batch.append(Entry(request_id=request_id, **{who: who_id}, **extra))
            if len(batch) == BATCH:
                Entry.objects.bulk_create(batch)
                batch = []
        Entry.objects.bulk_create(batch)


class Migration(migrations.Migration):
    dependencies = [("approvals", "0008_queue_entries")]

    operations = [migrations.RunPython(backfill, migrations.RunPython.noop, elidable=True)]
