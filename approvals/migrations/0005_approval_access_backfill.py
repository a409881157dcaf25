"""Access rows for the requests that exist (``ApprovalAccess``, created by 0004): the same
facts ``approvals.access.rebuild`` derives (stage assignees as they are now, audit actors,
requester, the run's starter), read through the historical models and inserted in batches.

A migration of its own: Django creates 0004's unique indexes at the end of that migration, and
the inserts rely on them to skip a user involved more than one way."""

from django.db import migrations

BATCH = 5000


def backfill(apps, schema_editor):
    Request = apps.get_model("approvals", "ApprovalRequest")
    Stage = apps.get_model("approvals", "ApprovalStage")
    Decision = apps.get_model("approvals", "DecisionRecord")
    Access = apps.get_model("approvals", "ApprovalAccess")
    stage_users = Stage._meta.get_field("users").remote_field.through.objects
    stage_groups = Stage._meta.get_field("groups").remote_field.through.objects
    sources = [
        ("user", Request.objects.filter(requester__isnull=False), "id", "run_id", "requester_id"),
        (
            "user",
            Request.objects.filter(run__created_by__isnull=False),
            "id",
            "run_id",
            "run__created_by_id",
        ),
        (
            "user",
            stage_users.all(),
            "approvalstage__request_id",
            "approvalstage__request__run_id",
            "user_id",
        ),
        (
            "user",
            Decision.objects.filter(actor__isnull=False),
            "request_id",
            "request__run_id",
            "actor_id",
        ),
        (
            "group",
            stage_groups.all(),
            "approvalstage__request_id",
            "approvalstage__request__run_id",
            "group_id",
        ),
    ]
    for principal, rows, request, run, who in sources:
        batch = []
        for request_id, run_id, who_id in rows.values_list(request, run, who).iterator(BATCH):
            batch.append(Access(request_id=request_id, run_id=run_id, **{f"{principal}_id": who_id}))
            if len(batch) == BATCH:
                Access.objects.bulk_create(batch, ignore_conflicts=True)
                batch = []
        Access.objects.bulk_create(batch, ignore_conflicts=True)


class Migration(migrations.Migration):
    dependencies = [("approvals", "0004_approval_access")]

    operations = [migrations.RunPython(backfill, migrations.RunPython.noop, elidable=True)]
