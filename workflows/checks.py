"""System checks for configuration mistakes that would show up as lost or doubled work."""

from django.conf import settings
from django.core.checks import Error, Tags, register


@register(Tags.compatibility)
def check_queue_settings(app_configs, **kwargs):
    errors = []
    q = getattr(settings, "Q_CLUSTER", {})
    timeout, retry = q.get("timeout"), q.get("retry")
    if timeout is None or retry is None or retry <= timeout:
        errors.append(
            Error(
                f"Q_CLUSTER['retry'] ({retry}) must be greater than "
                f"Q_CLUSTER['timeout'] ({timeout}).",
                hint="Otherwise django-q2 hands a task that is still running to a second worker. "
                "Set HITL_TASK_RETRY above HITL_TASK_TIMEOUT.",
                id="workflows.E001",
            )
        )
    lease = getattr(settings, "HITL_LEASE_SECONDS", 0)
    if timeout is not None and lease <= timeout:
        errors.append(
            Error(
                f"HITL_LEASE_SECONDS ({lease}) must be greater than "
                f"Q_CLUSTER['timeout'] ({timeout}).",
                hint="A worker may run a step for up to the task timeout; a shorter lease lets "
                "another worker take the run over and run the step twice.",
                id="workflows.E002",
            )
        )
    budget = getattr(settings, "HITL_ADVANCE_BUDGET_SECONDS", 0)
    if timeout is not None and budget >= timeout:
        errors.append(
            Error(
                f"HITL_ADVANCE_BUDGET_SECONDS ({budget}) must be below Q_CLUSTER['timeout'] "
                f"({timeout}).",
                hint="An advance yields after its budget so it never reaches the task timeout.",
                id="workflows.E003",
            )
        )
    return errors
