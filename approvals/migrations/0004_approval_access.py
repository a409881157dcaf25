"""Who is involved with each request, as rows (``ApprovalAccess``); 0005 fills them in."""


import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('approvals', '0003_queue_partial_indexes'),
        ('auth', '0012_alter_user_first_name_max_length'),
        ('workflows', '0003_webhook_receipts'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='ApprovalAccess',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('group', models.ForeignKey(db_index=False, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='auth.group')),
                ('request', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='approvals.approvalrequest')),
                ('run', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='workflows.workflowrun')),
                ('user', models.ForeignKey(db_index=False, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='+', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'verbose_name': 'approval access',
                'verbose_name_plural': 'approval access',
                'constraints': [models.CheckConstraint(condition=models.Q(models.Q(('group__isnull', True), ('user__isnull', False)), models.Q(('group__isnull', False), ('user__isnull', True)), _connector='OR'), name='access_one_principal'), models.UniqueConstraint(condition=models.Q(('user__isnull', False)), fields=('user', 'request'), name='access_user_unique'), models.UniqueConstraint(condition=models.Q(('group__isnull', False)), fields=('group', 'request'), name='access_group_unique')],
            },
        ),
    ]
