"""Partial indexes for the reviewer queues: pending requests and open stages only, so a queue
reads its own rows however long the past of decided requests grows (bench/README.md, queue
pages with a past).

On PostgreSQL they are built CONCURRENTLY: a deployment with a long history keeps accepting
decisions while they are built. That needs the migration outside a transaction."""

from django.db import migrations, models


class AddIndexConcurrentlyOnPostgres(migrations.AddIndex):
    """AddIndex, built without locking out writes on PostgreSQL; plain elsewhere."""

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor != "postgresql":
            return super().database_forwards(app_label, schema_editor, from_state, to_state)
        model = to_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            schema_editor.add_index(model, self.index, concurrently=True)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor != "postgresql":
            return super().database_backwards(app_label, schema_editor, from_state, to_state)
        model = from_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            schema_editor.remove_index(model, self.index, concurrently=True)


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
