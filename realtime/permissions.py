"""Who may watch which runs and which approval events: the one hook the consumers ask.

Replace it with ``HITL_REALTIME_VISIBILITY = "myapp.realtime.Visibility"`` (a subclass). The
approvals app is expected to override ``approval_events`` with its queue selector (assignees of
the open stages, "decide any" holders) once it exists; until then the approval queue shows the
same runs as the run stream. ``approval_events`` serves both the catch-up query and the live
filter, so the two cannot disagree about what a user sees.
"""

from functools import cache
from typing import Any

from django.db.models import QuerySet
from django.utils.module_loading import import_string

from workflows.models import RunEvent, WorkflowRun

from .conf import setting
from .groups import APPROVAL_EVENT_PREFIX


class RunVisibility:
    """Default: staff with ``workflows.manage_any_run`` see every run; others their own."""

    def sees_all(self, user: Any) -> bool:
        """True if ``user`` sees every run; lets the live approval filter skip its query."""
        return bool(user.is_active and user.is_staff and user.has_perm("workflows.manage_any_run"))

    def runs(self, user: Any) -> QuerySet[WorkflowRun]:
        if self.sees_all(user):
            return WorkflowRun.objects.all()
        return WorkflowRun.objects.filter(created_by=user)

    def may_watch_run(self, user: Any, run: WorkflowRun) -> bool:
        if self.sees_all(user):
            return True
        return self.runs(user).filter(pk=run.pk).exists()

    def sees_all_approvals(self, user: Any) -> bool:
        return self.sees_all(user)

    def approval_events(self, user: Any) -> QuerySet[RunEvent]:
        """The approval events ``user`` may receive on ``/ws/approvals/``."""
        events = RunEvent.objects.filter(type__startswith=APPROVAL_EVENT_PREFIX)
        if self.sees_all_approvals(user):
            return events
        return events.filter(run__in=self.runs(user))


@cache
def _visibility_class(path: str) -> type[RunVisibility]:
    return import_string(path)


def visibility() -> RunVisibility:
    return _visibility_class(setting("HITL_REALTIME_VISIBILITY"))()
