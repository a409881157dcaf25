"""Fewer index entries per step boundary.

A run's row is updated at every step boundary (its event sequence number, its lease, its
``updated_at``) and every such update used to add an entry to each of the run table's ten
indexes, because ``lease_expires_at`` was indexed. Now:

* ``run_lease_idx`` (status, lease_expires_at) goes: the sweeper finds expired leases through
  ``run_due_idx``'s "running" prefix, which holds only the runs being advanced right now. With
  no indexed column changing at a boundary, PostgreSQL can update the row in place (a HOT
  update), given free space on its page: the run table keeps 15 % of each page free for that.
* ``status`` loses its own index and its varchar-pattern twin: ``run_due_idx`` starts with it.
* ``workflow_name`` keeps a plain btree (``run_workflow_idx``, built first, CONCURRENTLY on
  PostgreSQL) and loses the pattern-ops twin no query uses.
* ``step.run`` and ``runevent.run`` lose their own indexes: the unique (run, sequence) and
  (run, seq) constraints start with them.

Outside a transaction, as CONCURRENTLY requires.
"""

import django.db.models.deletion
from django.db import migrations, models

from hitlproject.migration_operations import AddIndexConcurrentlyOnPostgres

RUN_TABLE = "workflows_workflowrun"


def leave_room_for_hot_updates(apps, schema_editor):
    # Applies to pages written from now on; existing pages fill up as rows are updated.
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"ALTER TABLE {RUN_TABLE} SET (fillfactor = 85)")


def reset_fillfactor(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"ALTER TABLE {RUN_TABLE} RESET (fillfactor)")


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("workflows", "0003_webhook_receipts")]

    operations = [
        AddIndexConcurrentlyOnPostgres(
            model_name="workflowrun",
            index=models.Index(fields=["workflow_name"], name="run_workflow_idx"),
        ),
        migrations.AlterField(
            model_name="workflowrun",
            name="workflow_name",
            field=models.CharField(max_length=200),
        ),
        migrations.AlterField(
            model_name="workflowrun",
            name="status",
            field=models.CharField(
                choices=[
                    ("pending", "Pending"),
                    ("running", "Running"),
                    ("waiting", "Waiting"),
                    ("completed", "Completed"),
                    ("failed", "Failed"),
                    ("cancelled", "Cancelled"),
                ],
                default="pending",
                max_length=16,
            ),
        ),
        migrations.RemoveIndex(model_name="workflowrun", name="run_lease_idx"),
        migrations.AlterField(
            model_name="step",
            name="run",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="steps",
                to="workflows.workflowrun",
            ),
        ),
        migrations.AlterField(
            model_name="runevent",
            name="run",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="events",
                to="workflows.workflowrun",
            ),
        ),
        migrations.RunPython(leave_room_for_hot_updates, reset_fillfactor, elidable=False),
    ]
