from django.apps import AppConfig


class ApprovalsConfig(AppConfig):
    name = "approvals"
    verbose_name = "Approvals"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from workflows import permissions, sweeper
        from workflows.models import WaitKind
        from workflows.signals import run_cancelled

        from .selectors import approval_runs_q
        from .services import approval_deadline, send_due_reminders
        from .tasks import requeue_due_notifications

        # The engine's sweeper drives our deadlines (escalation), reminders and delivery retries.
        sweeper.deadline_handlers[WaitKind.APPROVAL] = approval_deadline
        for hook in (send_due_reminders, requeue_due_notifications):
            if hook not in sweeper.sweep_hooks:
                sweeper.sweep_hooks.append(hook)
        run_cancelled.connect(_run_cancelled, dispatch_uid="approvals-run-cancelled")
        # Reviewers see the runs they are asked to decide (admin, API, WebSockets ask here).
        if approval_runs_q not in permissions.visibility_hooks:
            permissions.visibility_hooks.append(approval_runs_q)
        _register_api_errors()
        from workflows import webhooks

        from .webhooks import decide

        webhooks.actions["approval.decide"] = decide


def _run_cancelled(sender, run_id, **kwargs) -> None:
    from .services import cancel_requests_of_run

    cancel_requests_of_run(run_id=run_id)


def _register_api_errors() -> None:
    """Map our errors to HTTP answers in the project's REST API (when it is installed)."""
    try:
        from hitlproject.api.errors import extra_errors
    except ImportError:
        return
    from rest_framework import status

    from . import errors

    mapping = [
        (errors.ApprovalConflict, status.HTTP_409_CONFLICT, "conflict"),
        (errors.ApprovalNotAllowed, status.HTTP_403_FORBIDDEN, "not_allowed"),
        (errors.ApprovalNotFound, status.HTTP_404_NOT_FOUND, "not_found"),
        (errors.AuditImmutable, status.HTTP_409_CONFLICT, "audit_immutable"),
        (errors.InvalidDecision, status.HTTP_400_BAD_REQUEST, "invalid_input"),
    ]
    for entry in mapping:
        if entry not in extra_errors:
            extra_errors.append(entry)
