"""Trigram indexes for the admin's search (``approvals.selectors.search_q``): on PostgreSQL a
word found in a title, a requester or a run id is read from these instead of scanning every
request (bench/README.md, queue pages: "search by title").

PostgreSQL only, and not in the models' state: SQLite has no GIN indexes (and would try to
rebuild them whenever it remakes the table). They need the ``pg_trgm`` extension, which the
migration creates; it is a trusted extension (PostgreSQL 13+), so a database owner without
superuser may create it. Where it cannot be created, the migration says so and leaves search
to scan, as before. Built CONCURRENTLY, so a deployment keeps deciding while they build."""

from django.db import DatabaseError, migrations

# (name, indexed expression): the expressions Django's icontains compares on PostgreSQL.
INDEXES = [
    ("approval_title_trgm", "upper((title)::text)"),
    ("approval_requester_trgm", "upper((requester_name)::text)"),
    ("approval_run_trgm", "upper((run_id)::text)"),
]


def create(apps, schema_editor) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        try:
            cursor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        except DatabaseError as exc:  # no privilege, or the extension is not installed
            print(
                f"\n  approvals 0007: pg_trgm could not be created ({exc}); the admin's search"
                " scans the requests. CREATE EXTENSION pg_trgm as a superuser, then run"
                " `manage.py migrate approvals 0006` and `manage.py migrate` to build the indexes."
            )
            return
        for name, expression in INDEXES:
            cursor.execute(
                f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} ON approvals_approvalrequest "
                f"USING gin ({expression} gin_trgm_ops)"
            )


def drop(apps, schema_editor) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        for name, _ in INDEXES:
            cursor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("approvals", "0006_approval_created_idx")]

    operations = [migrations.RunPython(create, drop, elidable=False)]
