"""Queue entries (``QueueEntry``) and ``ApprovalRequest.due_at``: whom each pending request
waits for and until when, as rows and a column the queues read from indexes. 0009 fills them
in for the requests that exist; 0010 indexes ``due_at`` for the queues, concurrently."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('approvals', '0007_search_trigram_indexes'),
        ('auth', '0012_alter_user_first_name_max_length'),
        ('workflows', '0003_webhook_receipts'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='QueueEntry',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('claimed', models.BooleanField(default=False)),
            ],
            options={
                'verbose_name': 'queue entry',
                'verbose_name_plural': 'queue entries',
            },
        ),
        migrations.AddField(
            model_name='approvalrequest',
            name='due_at',
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.AddField(
            model_name='queueentry',
            name='group',
            field=models.ForeignKey(db_index=False, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='auth.group'),
        ),
        migrations.AddField(
            model_name='queueentry',
            name='request',
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='queue_entries', to='approvals.approvalrequest'),
        ),
        migrations.AddField(
            model_name='queueentry',
            name='user',
            field=models.ForeignKey(db_index=False, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='+', to=settings.AUTH_USER_MODEL),
        ),
        migrations.AddConstraint(
            model_name='queueentry',
            constraint=models.CheckConstraint(condition=models.Q(models.Q(('group__isnull', True), ('user__isnull', False)), models.Q(('claimed', False), ('group__isnull', False), ('user__isnull', True)), _connector='OR'), name='queue_one_principal'),
        ),
        migrations.AddConstraint(
            model_name='queueentry',
            constraint=models.UniqueConstraint(condition=models.Q(('user__isnull', False)), fields=('user', 'claimed', 'request'), name='queue_user_unique'),
        ),
        migrations.AddConstraint(
            model_name='queueentry',
            constraint=models.UniqueConstraint(condition=models.Q(('group__isnull', False)), fields=('group', 'request'), name='queue_group_unique'),
        ),
    ]
