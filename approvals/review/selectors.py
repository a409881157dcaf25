"""Reads behind the reviewer screens. Visibility comes from ``approvals.selectors`` and
``workflows.permissions``; nothing here decides who may act (the services do)."""

from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Q, QuerySet

from workflows import permissions
from workflows.models import RunEvent, RunStatus, WaitKind, WaitPoint, WaitStatus, WorkflowRun

from ..models import (
    APPROVING_ACTIONS,
    ApprovalRequest,
    ApprovalStage,
    ApprovalStatus,
    QueueEntry,
)
from ..selectors import (
    approval_queue_for,
    approvals_visible_to,
    group_ids,
    may_decide_any,
    queue_rows,
    with_details,
    with_progress,
)

# A workflow asks for buttons on the run page with this custom event (``ctx.emit``), e.g. the
# Upstash example: ``{"event_id", "message", "buttons": [{"label", "data"}]}``. A button sends
# its ``data`` to ``event_id`` (``notify``), for users allowed to send events.
PROMPT_EVENT = "waiting-for-input"


def last_event_id() -> int:
    """The newest run event: where a page's ``/ws/approvals/`` stream starts."""
    return RunEvent.objects.order_by("-pk").values_list("pk", flat=True).first() or 0


def review_rows(queryset: QuerySet[ApprovalRequest]) -> QuerySet[ApprovalRequest]:
    """What a list row shows (progress, assignees, claim) in a fixed number of queries."""
    return (
        with_progress(queryset)
        .select_related("current_stage__claimed_by")
        .prefetch_related("current_stage__users", "current_stage__groups")
    )


def review_queue(user: Any, scope: str = "all") -> QuerySet[ApprovalRequest]:
    """The user's approval queue (see ``approval_queue_for``) with what a row shows."""
    return review_rows(approval_queue_for(user, scope=scope))


def review_queue_rows(user: Any, keys: list[Any]) -> QuerySet[ApprovalRequest]:
    """The rows of ``review_queue`` with these keys, read without the queue's filter: for a
    page whose keys have just been chosen from the queue (``KeysFirstPaginator``)."""
    return review_rows(queue_rows(ApprovalRequest.objects.filter(pk__in=keys), user))


def open_inputs_for(user: Any) -> QuerySet[WaitPoint]:
    """Open input requests the user may answer (``can_answer_input``) on runs they may see:
    with ``answer_any_input`` those of every visible run, else those of runs they started."""
    if not user.is_authenticated or not user.is_active:
        return WaitPoint.objects.none()
    waits = WaitPoint.objects.filter(kind=WaitKind.INPUT, status=WaitStatus.OPEN)
    if not permissions.sees_all_runs(user):
        if user.has_perm("workflows.answer_any_input"):
            # Only runs the user can open: the form lives on the run's page.
            waits = waits.filter(run__in=permissions.runs_visible_to(user).values("pk"))
        else:
            # Their own runs, which they can always open (``runs_visible_to``). Not through
            # the visibility subquery: over a long history its estimate alone made PostgreSQL
            # spend 0.8 s compiling the plan of a query that found nothing (bench/README).
            waits = waits.filter(run__created_by=user)
    return waits.select_related("run").order_by("created_at")


def approval_for(user: Any, approval_id: Any) -> ApprovalRequest | None:
    """The request if ``user`` may read it (None otherwise: a 404, never a hint it exists)."""
    return with_details(approvals_visible_to(user)).filter(pk=approval_id).first()


def run_for(user: Any, run_id: Any) -> WorkflowRun | None:
    return permissions.runs_visible_to(user).filter(pk=run_id).first()


@dataclass
class OpenWait:
    """Something the run waits for, with what this user can do about it on the page."""

    wait: WaitPoint
    approval: ApprovalRequest | None = None
    can_answer: bool = False
    prompt: dict | None = None  # the workflow's PROMPT_EVENT for this wait, if any
    can_send: bool = False
    buttons: list[dict] = field(default_factory=list)


def open_waits(user: Any, run: WorkflowRun) -> list[OpenWait]:
    waits = list(run.waits.filter(status=WaitStatus.OPEN).order_by("sequence"))
    approvals = {
        a.wait_id: a for a in approvals_visible_to(user).filter(wait__in=[w.pk for w in waits])
    }
    prompts = _prompts(run, [w.event_id for w in waits if w.kind == WaitKind.EVENT])
    may_answer = permissions.can_answer_input(user, run)
    may_send = permissions.can_send_events(user)
    result = []
    for wait in waits:
        prompt = prompts.get(wait.event_id) if wait.kind == WaitKind.EVENT else None
        buttons = [b for b in (prompt or {}).get("buttons", []) if isinstance(b, dict)]
        result.append(
            OpenWait(
                wait=wait,
                approval=approvals.get(wait.pk),
                can_answer=wait.kind == WaitKind.INPUT and may_answer,
                prompt=prompt,
                can_send=bool(buttons) and may_send,
                buttons=buttons,
            )
        )
    return result


def _prompts(run: WorkflowRun, event_ids: list[str]) -> dict[str, dict]:
    if not event_ids:
        return {}
    found = {}
    for data in (
        RunEvent.objects.filter(run=run, type=PROMPT_EVENT)
        .order_by("seq")
        .values_list("data", flat=True)
    ):
        if isinstance(data, dict) and data.get("event_id") in event_ids:
            found[data["event_id"]] = data  # the latest prompt for an event id wins
    return found


def run_outcome(run: WorkflowRun) -> str:
    """The run page's headline once the run is over."""
    return {
        RunStatus.COMPLETED: "Workflow finished",
        RunStatus.FAILED: "Workflow failed",
        RunStatus.CANCELLED: "Workflow cancelled",
    }.get(run.status, "")


def decidable(user: Any, requests: list[ApprovalRequest], action: str) -> dict[Any, str]:
    """For a bulk decision's confirmation page: why each request the user cannot ``action``
    (approve / reject) will be skipped (``{pk: reason}``; absent = will be decided).

    A preview that mirrors the decision service's rules so the page can list what will
    happen; the service checks again on confirmation and what it refuses then is reported.
    """
    pending = [r.pk for r in requests if r.status == ApprovalStatus.PENDING]
    assigned = set(
        assigned_to(ApprovalRequest.objects.filter(pk__in=pending), user.pk).values_list(
            "pk", flat=True
        )
    )
    approved_before = set(
        ApprovalRequest.objects.filter(
            pk__in=pending, decisions__actor=user, decisions__action__in=APPROVING_ACTIONS
        ).values_list("pk", flat=True)
    )
    decide_any = may_decide_any(user)
    approving = action != "reject"
    skipped = {}
    for request in requests:
        stage = request.current_stage
        claimed_by_other = stage is not None and stage.claimed_by_id not in (None, user.pk)
        if request.status != ApprovalStatus.PENDING:
            skipped[request.pk] = f"already {request.get_status_display().lower()}"
        elif not decide_any and request.pk not in assigned:
            skipped[request.pk] = "not assigned to you"
        elif approving and _is_own(request, user):
            skipped[request.pk] = "you requested it (four-eyes rule)"
        elif approving and request.pk in approved_before:
            skipped[request.pk] = "you already approved a stage of it"
        elif claimed_by_other and not decide_any:
            skipped[request.pk] = f"claimed by {stage.claimed_by}"
    return skipped


def _is_own(request: ApprovalRequest, user: Any) -> bool:
    if request.requester_id is not None:
        return request.requester_id == user.pk
    return bool(request.requester_name) and request.requester_name == user.get_username()


def assignee_choices() -> list[tuple[str, str]]:
    """Users who can be assigned (named on a stage or in a group of one), for list filters."""
    stages = ApprovalStage.objects.filter(status="open")
    named = ApprovalStage.users.through.objects.filter(approvalstage__in=stages).values("user_id")
    grouped = ApprovalStage.groups.through.objects.filter(approvalstage__in=stages).values(
        "group_id"
    )
    users = (
        get_user_model()
        .objects.filter(Q(pk__in=named) | Q(groups__in=grouped), is_active=True)
        .distinct()
        .order_by("username")
    )
    return [(str(pk), username) for pk, username in users.values_list("pk", "username")[:200]]


def assigned_to(queryset: QuerySet[ApprovalRequest], user_id: Any) -> QuerySet[ApprovalRequest]:
    """Requests whose open stage names the user or one of their groups, or is claimed by them
    (their queue entries, ``approvals.queue``)."""
    matching = QueueEntry.objects.filter(Q(user=user_id) | Q(group__in=group_ids(user_id)))
    return queryset.filter(pk__in=matching.values("request_id"), status=ApprovalStatus.PENDING)
