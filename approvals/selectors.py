"""Reads of approval requests: a user's queue, a request's progress, its diff and outcome."""

from datetime import datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import (
    BooleanField,
    Case,
    Exists,
    F,
    OuterRef,
    Prefetch,
    Q,
    QuerySet,
    Value,
    When,
)
from django.utils.text import smart_split, unescape_string_literal

from workflows import clock

from .models import (
    APPROVING_ACTIONS,
    Action,
    ApprovalAccess,
    ApprovalRequest,
    ApprovalStage,
    ApprovalStatus,
    DecisionRecord,
    QueueEntry,
    StageStatus,
)

QUEUE_SCOPES = ("all", "assigned", "groups", "claimed", "overdue")


def may_decide_any(user: Any) -> bool:
    return bool(user is not None and user.is_active and user.has_perm("approvals.decide_any"))


def is_assignee(stage: ApprovalStage, user: Any) -> bool:
    """Named on the stage, or a member of one of its groups."""
    # One EXISTS over both ways, not a query each: a decision asks this on every call.
    through_users = ApprovalStage.users.through.objects.filter(approvalstage=stage, user=user)
    through_groups = ApprovalStage.groups.through.objects.filter(
        approvalstage=stage, group__user=user
    )
    return ApprovalStage.objects.filter(
        Exists(through_users) | Exists(through_groups), pk=stage.pk
    ).exists()


def stage_assignee_users(stage: ApprovalStage) -> QuerySet:
    """Active users who may decide the stage by assignment (users and group members)."""
    User = get_user_model()
    return (
        User.objects.filter(
            Q(pk__in=stage.users.values("pk")) | Q(groups__in=stage.groups.values("pk")),
            is_active=True,
        )
        .distinct()
        .order_by("pk")
    )


def waiting_for_q(user: Any, scope: str = "all") -> Q:
    """The condition behind ``approval_queue_for``, to filter any request queryset with.

    Pending requests whose open stage names the user or one of their groups (``assigned``,
    ``groups``) or is claimed by them (``claimed``); not the user's own requests (they cannot
    approve them) nor those the user already approved a stage of (one person approves at most
    one stage). Every such request is one the user may see (``approvals_visible_to``): they
    are assigned, or their claim is on record.
    """
    if scope not in ("all", "assigned", "groups", "claimed"):
        raise ValueError(f"scope must be one of {', '.join(QUEUE_SCOPES)}")
    # Read from the queue entries (``approvals.queue``): only open stages have them, so a
    # reviewer's queue costs what its own requests cost, however many stages were decided
    # before (bench/README, queue pages). Groups are matched when read: joining a group puts
    # its requests in the queue at once.
    if scope in ("assigned", "claimed"):
        where = Q(user=user, claimed=scope == "claimed")
    else:
        groups = Q(group__in=group_ids(user))
        where = groups if scope == "groups" else Q(user=user) | groups
    # One IN, with the ways inside it: PostgreSQL joins it (hash or nested loop, by cost)
    # and its time grows with the queue. An OR of one IN per way made each IN a subplan,
    # hashed only while its rows fit in work_mem; past that every request re-read the
    # subplan's rows (a queue of 400,000: no answer in 2 minutes; bench/README, queue pages).
    mine = QueueEntry.objects.filter(where).values("request_id")
    # NOT EXISTS (an anti-join) rather than NOT IN: a NOT IN subplan is hashed only while
    # the user's approvals fit in work_mem, and a long-serving approver's do not.
    approved_before = DecisionRecord.objects.filter(
        request=OuterRef("pk"), actor=user, action__in=APPROVING_ACTIONS
    )
    return (
        Q(pk__in=mine)
        & Q(status=ApprovalStatus.PENDING)
        & ~Q(requester=user)
        & ~Q(Exists(approved_before))
    )


def overdue_q(now: datetime | None = None) -> Q:
    """Requests whose open stage's deadline has passed: the one definition of "overdue".
    (``due_at`` is that deadline while the request is pending.)"""
    return Q(status=ApprovalStatus.PENDING, due_at__lt=now or clock.now())


def is_overdue(now: datetime | None = None) -> Case:
    """``overdue_q`` as a boolean annotation, for a row to show. Filter with ``overdue_q``
    itself, which PostgreSQL can answer from the queue index."""
    return Case(
        When(overdue_q(now), then=Value(True)), default=Value(False), output_field=BooleanField()
    )


# The most urgent first: overdue means a deadline before now, so the earliest deadline first
# is "overdue first, then by deadline", and the queue index (due_at, created_at, id) is in
# this order. Requests without a deadline come last, on every database.
QUEUE_ORDER = (F("due_at").asc(nulls_last=True), "created_at", "pk")


def approval_queue_for(
    user: Any, *, scope: str = "all", now: datetime | None = None
) -> QuerySet[ApprovalRequest]:
    """Pending requests waiting for ``user`` (see ``waiting_for_q``). Each row is annotated with
    ``is_overdue`` (the stage's deadline passed) and ``claimed_by_me``; most urgent first.
    ``scope`` narrows the queue to ``assigned`` (named personally), ``groups``, ``claimed`` or
    ``overdue``.
    """
    if scope not in QUEUE_SCOPES:
        raise ValueError(f"scope must be one of {', '.join(QUEUE_SCOPES)}")
    now = now or clock.now()
    queue = queue_rows(
        ApprovalRequest.objects.filter(waiting_for_q(user, "all" if scope == "overdue" else scope)),
        user,
        now,
    )
    if scope == "overdue":
        queue = queue.filter(overdue_q(now))
    return queue.order_by(*QUEUE_ORDER)


def queue_rows(
    queryset: QuerySet[ApprovalRequest], user: Any, now: datetime | None = None
) -> QuerySet[ApprovalRequest]:
    """What a queue row carries (``approval_queue_for``): the open stage, ``is_overdue`` and
    ``claimed_by_me``; run and requester in two small queries for the rows read. Separate from
    the queue's filter so a page's rows can be read by key without evaluating it again."""
    claimed = QueueEntry.objects.filter(request=OuterRef("pk"), user=user, claimed=True)
    return (
        # The page's rows are chosen from requests alone; runs and requesters are fetched for
        # those rows only, so PostgreSQL does not join 100,000 runs to sort them and keep 50.
        queryset.select_related("current_stage")
        .prefetch_related("run", "requester")
        .defer("schema", "value", "description")
        .annotate(is_overdue=is_overdue(now or clock.now()), claimed_by_me=Exists(claimed))
    )


def group_ids(user: Any) -> list[Any]:
    """The groups of ``user`` (a user or their id), read now. Queues and visibility filter
    their rows by these values rather than by a subquery: PostgreSQL then estimates each
    group's share of the rows from its statistics, and plans a reviewer of three requests and
    one of 300,000 each their own way (a deep page walks the creation index instead of sorting
    every visible request)."""
    memberships = get_user_model().groups.through.objects.filter(user=user)
    return list(memberships.values_list("group_id", flat=True))


def involved_with(user: Any) -> QuerySet[ApprovalAccess]:
    """Access rows naming ``user`` or one of their groups (``approvals.access``): the requests
    they are assigned to, acted on or requested, and those of runs they started. Group rows are
    matched against the user's groups when read, so joining a group shows its requests."""
    return ApprovalAccess.objects.filter(Q(user=user) | Q(group__in=group_ids(user)))


def approval_runs_q(user: Any) -> Q:
    """Runs a user may see because of approvals (a ``workflows.permissions`` visibility hook):
    runs with a request the user is involved with (``involved_with``); every run with a request
    for holders of ``approvals.decide_any``.

    A correlated ``EXISTS`` probing the access rows by run: the cost follows the runs a list
    reads, not the history (bench/README, queue pages with a past).
    """
    if may_decide_any(user):
        return Q(Exists(ApprovalRequest.objects.filter(run=OuterRef("pk"))))
    return Q(Exists(involved_with(user).filter(run=OuterRef("pk"))))


def approval_history(request: ApprovalRequest) -> QuerySet[DecisionRecord]:
    return request.decisions.select_related("stage", "actor").order_by("created_at", "id")


# The actions that close a stage in each final status.
_CLOSING = {
    StageStatus.APPROVED: frozenset({*APPROVING_ACTIONS, Action.TIMEOUT}),
    StageStatus.REJECTED: frozenset({Action.REJECT}),
    StageStatus.TIMED_OUT: frozenset({Action.TIMEOUT}),
    StageStatus.CANCELLED: frozenset({Action.CANCEL}),
}


def _closing_record(stage: ApprovalStage, records: list[DecisionRecord]) -> DecisionRecord | None:
    closing = _CLOSING.get(stage.status, frozenset())
    return next((r for r in reversed(records) if r.action in closing), None)


def stage_decider(stage: ApprovalStage) -> DecisionRecord | None:
    """The record that closed the stage (last approval, rejection, timeout or cancel)."""
    if stage.status not in _CLOSING:
        return None
    return _closing_record(stage, list(stage.decisions.order_by("created_at", "id")))


def _stage_rows(request: ApprovalRequest) -> list[tuple[ApprovalStage, list[DecisionRecord]]]:
    # .all() and sorting in Python, so lists that prefetch "stages" and "decisions"
    # (see with_progress) pay no query per row.
    stages = sorted(request.stages.all(), key=lambda s: s.order)
    records: dict[int, list[DecisionRecord]] = {s.pk: [] for s in stages}
    decisions = sorted(request.decisions.all(), key=lambda r: (r.created_at, r.pk))
    for record in decisions:
        if record.stage_id in records:
            records[record.stage_id].append(record)
    return [(stage, records[stage.pk]) for stage in stages]


def with_progress(queryset: QuerySet[ApprovalRequest]) -> QuerySet[ApprovalRequest]:
    """Prefetch what ``approval_progress`` and stage counts read: constant queries per page."""
    # Runs and requesters are prefetched for the page's rows rather than joined: a join would
    # make PostgreSQL join every candidate row before it sorts and keeps one page.
    # Decisions carry their stage (a history row names it): one join, not one more query.
    decisions = Prefetch("decisions", DecisionRecord.objects.select_related("stage"))
    return queryset.select_related("current_stage").prefetch_related(
        "run", "requester", "stages", decisions
    )


def with_details(queryset: QuerySet[ApprovalRequest]) -> QuerySet[ApprovalRequest]:
    """``with_progress`` plus what a request's own page or detail answer reads (its stages'
    assignees and claimers, who decided it): constant queries."""
    return (
        with_progress(queryset)
        .select_related("decided_by")
        .prefetch_related("stages__users", "stages__groups", "stages__claimed_by")
    )


def stage_approvals(stage: ApprovalStage) -> int:
    """How many approvals the stage has (from the request's prefetched decisions if any)."""
    return sum(
        1
        for record in stage.request.decisions.all()
        if record.stage_id == stage.pk and record.action in APPROVING_ACTIONS
    )


def _approvers(records: list[DecisionRecord]) -> list[str]:
    return [r.actor_name for r in records if r.action in APPROVING_ACTIONS]


def approval_progress(request: ApprovalRequest) -> str:
    """One line per request: "manager approved by ann -> finance waiting 1 of 2 -> ceo"."""
    parts = []
    for stage, records in _stage_rows(request):
        approvers = _approvers(records)
        closing = {r.action: r for r in records}
        if stage.status == StageStatus.APPROVED:
            by = ", ".join(approvers) if approvers else "the system (deadline)"
            parts.append(f"{stage.name} approved by {by}")
        elif stage.status == StageStatus.OPEN:
            parts.append(f"{stage.name} waiting {len(approvers)} of {stage.required}")
        elif stage.status == StageStatus.REJECTED:
            parts.append(f"{stage.name} rejected by {closing[Action.REJECT].actor_name}")
        elif stage.status == StageStatus.QUEUED:
            parts.append(stage.name)
        else:
            parts.append(f"{stage.name} {stage.get_status_display().lower()}")
    return " -> ".join(parts)


def approval_resolution(request: ApprovalRequest) -> dict:
    """What the workflow's ``Decision`` is built from (stored as the wait's resolution)."""
    stages = []
    timed_out = request.status == ApprovalStatus.TIMED_OUT
    for stage, records in _stage_rows(request):
        closing = _closing_record(stage, records)
        by_deadline = closing is not None and closing.action == Action.TIMEOUT
        timed_out = timed_out or by_deadline
        stages.append(
            {
                "name": stage.name,
                "status": stage.status,
                "required": stage.required,
                "approved_by": _approvers(records),
                "decided_by": (closing.actor_name or None) if closing else None,
                "reason": closing.comment if closing else "",
                "timed_out": by_deadline,
                "escalated": stage.escalation_count > 0,
                "decided_at": stage.decided_at,
            }
        )
    return {
        "request_id": str(request.pk),
        "status": request.status,
        "approved": request.status == ApprovalStatus.APPROVED,
        "value": request.value,
        "original_value": request.payload,
        "edited": request.value != request.payload,
        "reason": request.reason,
        "decided_by": request.decided_by.get_username() if request.decided_by_id else None,
        "decided_by_id": request.decided_by_id,
        "decided_at": request.decided_at,
        "timed_out": timed_out,
        "stages": stages,
    }


def approval_summary(request: ApprovalRequest) -> dict:
    """The request as run events and webhooks describe it."""
    stage = request.current_stage
    return {
        "request_id": str(request.pk),
        "key": request.key,
        "title": request.title,
        "status": request.status,
        "current_stage": stage.name if stage else None,
        "deadline": stage.deadline if stage and stage.is_open else None,
        "progress": approval_progress(request),
    }


def value_diff(old: Any, new: Any, path: str = "") -> list[dict]:
    """Differences between two JSON values as ``[{"path", "old", "new"}]`` (dotted paths)."""
    if isinstance(old, dict) and isinstance(new, dict):
        changes = []
        for key in sorted(set(old) | set(new), key=str):
            sub = f"{path}.{key}" if path else str(key)
            if key not in new:
                changes.append({"path": sub, "old": old[key], "new": None, "change": "removed"})
            elif key not in old:
                changes.append({"path": sub, "old": None, "new": new[key], "change": "added"})
            else:
                changes.extend(value_diff(old[key], new[key], sub))
        return changes
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        changes = []
        for index, (a, b) in enumerate(zip(old, new, strict=True)):
            changes.extend(value_diff(a, b, f"{path}[{index}]" if path else f"[{index}]"))
        return changes
    if old == new:
        return []
    return [{"path": path or "value", "old": old, "new": new, "change": "changed"}]


def approval_diff(request: ApprovalRequest) -> list[dict]:
    """How the value now differs from what the workflow proposed (empty when not edited)."""
    return value_diff(request.payload, request.value)


def search_q(search_term: str) -> Q:
    """Requests matching every word of ``search_term`` (a quoted phrase is one word), each in
    the title, the requester as recorded or their current username, or any part of the run id.

    Every alternative is a condition on the request row itself (the matching users' ids are
    read first), so PostgreSQL answers a word from the trigram indexes of migration 0007 and
    combines the words' bitmaps, instead of scanning every request with its requester joined
    (the admin's own search over ``requester__username``: bench/README, queue pages)."""
    User = get_user_model()
    query = Q()
    for word in _search_words(search_term):
        requesters = User.objects.filter(**{f"{User.USERNAME_FIELD}__icontains": word})
        query &= (
            Q(title__icontains=word)
            | Q(requester_name__icontains=word)
            | Q(run__id__icontains=word)
            | Q(requester__in=list(requesters.values_list("pk", flat=True)))
        )
    return query


def _search_words(search_term: str) -> list[str]:
    """The admin's own splitting (``ModelAdmin.get_search_results``). NUL characters are
    dropped: PostgreSQL cannot compare text with one."""
    words = []
    for bit in smart_split(search_term.replace("\x00", "")):
        if bit.startswith(('"', "'")) and bit[0] == bit[-1]:
            bit = unescape_string_literal(bit)
        if bit:
            words.append(bit)
    return words


def approvals_visible_to(user: Any) -> QuerySet[ApprovalRequest]:
    """Requests ``user`` may read: every one for ``decide_any`` or run managers; otherwise those
    they are involved with (``involved_with``): named on a stage, acted on, requested, or whose
    run they started. Read from the access rows' indexes: counting a broad reviewer's 300,000
    requests no longer joins every request's stages and audit (bench/README)."""
    from workflows.permissions import sees_all_runs

    if not user or not user.is_authenticated or not user.is_active:
        return ApprovalRequest.objects.none()
    if may_decide_any(user) or sees_all_runs(user):
        return ApprovalRequest.objects.all()
    return ApprovalRequest.objects.filter(pk__in=involved_with(user).values("request_id"))


def approvals_to_list(user: Any, *, waiting_for_me: bool) -> QuerySet[ApprovalRequest]:
    """What a request list starts from: ``approvals_visible_to(user)``, or, when the list will
    be narrowed to ``waiting_for_q(user)`` anyway, every request. Everything waiting for an
    active user is visible to them, so the visibility subquery would only repeat that work."""
    if waiting_for_me and user.is_active:
        return ApprovalRequest.objects.all()
    return approvals_visible_to(user)
