"""Migration operations shared by the apps' migrations."""

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations


class AddIndexConcurrentlyOnPostgres(AddIndexConcurrently):
    """Django's AddIndexConcurrently on PostgreSQL; a plain AddIndex elsewhere (SQLite)."""

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        operation = _operation_for(schema_editor)
        operation.database_forwards(self, app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        operation = _operation_for(schema_editor)
        operation.database_backwards(self, app_label, schema_editor, from_state, to_state)


def _operation_for(schema_editor) -> type[migrations.AddIndex]:
    on_postgres = schema_editor.connection.vendor == "postgresql"
    return AddIndexConcurrently if on_postgres else migrations.AddIndex
