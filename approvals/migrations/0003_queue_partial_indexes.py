"""Partial indexes for the reviewer queues: pending requests and open stages only, so a queue
reads its own rows however long the past of decided requests grows (bench/README.md, queue
pages with a past).

On PostgreSQL they are built CONCURRENTLY: a deployment with a long history keeps accepting
decisions while they are built. That needs the migration outside a transaction."""

from django.db import migrations, models

from hitlproject.migration_operations import AddIndexConcurrentlyOnPostgres


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("approvals", "0002_decision_append_only_trigger")]

    operations = [
        AddIndexConcurrentlyOnPostgres(
            model_name="approvalrequest",
            index=models.Index(
                condition=models.Q(status="pending"),
                fields=["current_stage", "requester", "created_at", "id"],
                name="approval_pending_idx",
            ),
        ),
        AddIndexConcurrentlyOnPostgres(
            model_name="approvalstage",
            index=models.Index(
                condition=models.Q(status="open"),
                fields=["id", "deadline", "claimed_by"],
                name="stage_open_idx",
            ),
        ),
    ]
