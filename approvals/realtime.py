"""Who receives which live events: the approvals app's answer to ``realtime.permissions``.

Selected by ``HITL_REALTIME_VISIBILITY = "approvals.realtime.Visibility"``. Without it the
realtime default only lets run managers and a run's creator watch, so a reviewer's open queue
and request pages would never update: reviewers are neither. Here a user watches the runs
``workflows.permissions.runs_visible_to`` grants (its approvals hook adds the runs with a
request assigned to them), and receives the approval events of those runs, the same rule the
admin, the review page and the API read with.
"""

from typing import Any

from django.db.models import QuerySet

from realtime.groups import APPROVAL_EVENT_PREFIX
from realtime.permissions import RunVisibility
from workflows.models import RunEvent, WorkflowRun
from workflows.permissions import runs_visible_to, sees_all_runs

from .selectors import may_decide_any


class Visibility(RunVisibility):
    def sees_all(self, user: Any) -> bool:
        return super().sees_all(user) or sees_all_runs(user)

    def runs(self, user: Any) -> QuerySet[WorkflowRun]:
        return runs_visible_to(user)

    def sees_all_approvals(self, user: Any) -> bool:
        return self.sees_all(user) or may_decide_any(user)

    def approval_events(self, user: Any) -> QuerySet[RunEvent]:
        events = RunEvent.objects.filter(type__startswith=APPROVAL_EVENT_PREFIX)
        if self.sees_all_approvals(user):
            return events
        return events.filter(run__in=runs_visible_to(user).values("pk"))
