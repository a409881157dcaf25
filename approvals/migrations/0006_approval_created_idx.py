"""The requests' creation index ("All I may see", newest first), built CONCURRENTLY on
PostgreSQL as in 0003."""

from django.db import migrations, models

from hitlproject.migration_operations import AddIndexConcurrentlyOnPostgres


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("approvals", "0005_approval_access_backfill")]

    operations = [
        AddIndexConcurrentlyOnPostgres(
            model_name="approvalrequest",
            index=models.Index(fields=["created_at"], name="approval_created_idx"),
        ),
    ]
