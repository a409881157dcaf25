from django.apps import AppConfig


class WorkflowsConfig(AppConfig):
    name = "workflows"
    verbose_name = "Workflows"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.conf import settings
        from django.db.models.signals import post_migrate
        from django_q.signals import post_spawn

        from . import checks  # noqa: F401  (registers the system checks)
        from .registry import load_workflow_modules
        from .tasks import start_timer_thread

        load_workflow_modules(list(settings.HITL_WORKFLOW_MODULES))
        post_spawn.connect(start_timer_thread, dispatch_uid="hitl-timer")
        post_migrate.connect(_install_schedule, sender=self, dispatch_uid="hitl-schedule")
        from . import sweeper, webhooks

        if webhooks.prune_receipts not in sweeper.sweep_hooks:
            sweeper.sweep_hooks.append(webhooks.prune_receipts)


def _install_schedule(**kwargs) -> None:
    from .tasks import ensure_sweep_schedule

    ensure_sweep_schedule()
