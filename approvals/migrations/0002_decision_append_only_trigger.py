"""On PostgreSQL, the database itself refuses UPDATE and DELETE of decision records, whatever
code (raw SQL, another client) tries. Other databases rely on the model's refusal."""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION approvals_decision_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'approvals_decisionrecord is append-only: % refused', TG_OP
        USING ERRCODE = 'integrity_constraint_violation';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER approvals_decision_append_only
    BEFORE UPDATE OR DELETE ON approvals_decisionrecord
    FOR EACH ROW EXECUTE FUNCTION approvals_decision_append_only();
"""

DROP = """
DROP TRIGGER IF EXISTS approvals_decision_append_only ON approvals_decisionrecord;
DROP FUNCTION IF EXISTS approvals_decision_append_only();
"""


class PostgresOnlyRunSQL(migrations.RunSQL):
    """RunSQL that does nothing on other database vendors."""

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_forwards(app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_backwards(app_label, schema_editor, from_state, to_state)


class Migration(migrations.Migration):
    dependencies = [("approvals", "0001_initial")]

    operations = [PostgresOnlyRunSQL(CREATE, DROP)]
