"""Who may see and act on which runs. Every reader (admin, API, review page, WebSockets) asks
here, so the channels cannot disagree.

Other apps widen visibility through ``visibility_hooks``: each hook maps a user to a ``Q`` on
``WorkflowRun`` (approvals adds "runs with an approval assigned to me"). A hook's ``Q`` must
not join a multi-valued relation (use ``Exists`` or ``pk__in``): each run is then listed once
with no DISTINCT, which would sort every visible run before a page could be read.
"""

from collections.abc import Callable
from typing import Any

from django.db.models import Q, QuerySet

from .models import WorkflowRun

visibility_hooks: list[Callable[[Any], Q]] = []


def sees_all_runs(user: Any) -> bool:
    return bool(user and user.is_active and user.has_perm("workflows.manage_any_run"))


def runs_visible_to(user: Any) -> QuerySet[WorkflowRun]:
    """Runs ``user`` may read: all with ``manage_any_run``, else their own plus hook grants."""
    if not user or not user.is_authenticated or not user.is_active:
        return WorkflowRun.objects.none()
    if sees_all_runs(user):
        return WorkflowRun.objects.all()
    condition = Q(created_by=user)
    for hook in visibility_hooks:
        condition |= hook(user)
    return WorkflowRun.objects.filter(condition)


def can_view_run(user: Any, run: WorkflowRun) -> bool:
    return sees_all_runs(user) or runs_visible_to(user).filter(pk=run.pk).exists()


def can_manage_run(user: Any, run: WorkflowRun) -> bool:
    """Cancel and retry: whoever started the run, or holders of ``manage_any_run``."""
    if not user or not user.is_authenticated:
        return False
    return sees_all_runs(user) or (run.created_by_id is not None and run.created_by_id == user.pk)


def can_start_runs(user: Any) -> bool:
    return bool(user and user.is_active and user.has_perm("workflows.add_workflowrun"))


def can_send_events(user: Any) -> bool:
    """Events resume whatever waits on their id, so sending one needs its own permission."""
    return bool(user and user.is_active and user.has_perm("workflows.send_event"))


def can_answer_input(user: Any, run: WorkflowRun) -> bool:
    if not user or not user.is_authenticated:
        return False
    if user.has_perm("workflows.answer_any_input"):
        return True
    return can_manage_run(user, run)
