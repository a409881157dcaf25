"""The queues' index: pending requests in queue order (``due_at``, then age), with the columns
a queue filters on, replacing ``approval_pending_idx`` (0003), which ordered them by stage.

Built after 0009 has filled in ``due_at``, and CONCURRENTLY on PostgreSQL as 0003's were: a
deployment with a long history keeps taking decisions while it is built. That needs the
migration outside a transaction."""

from django.db import migrations, models

from hitlproject.migration_operations import AddIndexConcurrentlyOnPostgres


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("approvals", "0009_queue_entries_backfill")]

    operations = [
        AddIndexConcurrentlyOnPostgres(
            model_name="approvalrequest",
            index=models.Index(
                condition=models.Q(status="pending"),
                fields=["due_at", "created_at", "id", "requester"],
                name="approval_queue_idx",
            ),
        ),
        migrations.RemoveIndex(model_name="approvalrequest", name="approval_pending_idx"),
    ]
