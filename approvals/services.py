"""Every write to approval requests. The admin, the review page, the API, signed links and the
sweeper all call these; none of them holds a rule of its own.

Locking: every change locks the run's row and then the request's row (``_lock``), the same order
``workflows.services.run_cancel`` takes (it holds the run when it cancels our requests), so two
writers of one request never interleave: on PostgreSQL through ``SELECT ... FOR UPDATE``, on
SQLite because IMMEDIATE transactions already admit one writer at a time. Rules are checked
after the lock, against the state as it is then: of concurrent decisions on one stage exactly one
finds it open, the others get ``ApprovalConflict`` naming the winner.
"""

import logging
import uuid
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import IntegrityError, transaction
from django.db.models import Q, prefetch_related_objects

from hitlproject.parsing import whole_number
from workflows import clock, journal
from workflows.errors import NotSerializable
from workflows.models import WaitPoint, WaitStatus, WorkflowRun
from workflows.outbox import record_event
from workflows.registry import to_json

from . import access, links, notifications, queue
from .errors import (
    ApprovalConflict,
    ApprovalError,
    ApprovalNotAllowed,
    ApprovalNotFound,
    InvalidDecision,
    LinkUsed,
)
from .models import (
    APPROVING_ACTIONS,
    Action,
    ApprovalRequest,
    ApprovalStage,
    ApprovalStatus,
    Channel,
    DecisionRecord,
    OnTimeout,
    StageStatus,
    UsedDecisionLink,
)
from .selectors import (
    approval_resolution,
    approval_summary,
    is_assignee,
    may_decide_any,
    stage_decider,
)

log = logging.getLogger(__name__)

BATCH = 500
NOTHING: Any = object()  # "no value given" (None is a valid JSON value for an edit)

# Actions a person can take through approval_decide; the system's own (timeout, escalate,
# remind, create) are not among them.
PERSON_ACTIONS = frozenset(
    {
        Action.APPROVE,
        Action.REJECT,
        Action.EDIT,
        Action.CANCEL,
        Action.CLAIM,
        Action.UNCLAIM,
        Action.REASSIGN,
        Action.DELEGATE,
        Action.COMMENT,
    }
)
STAGE_DECISIONS = frozenset({Action.APPROVE, Action.REJECT, Action.EDIT})


# --- creating a request (inside the wait's transaction) -----------------------------------


def approval_create(
    *,
    wait: WaitPoint,
    key: str,
    title: str,
    stages: list[dict],
    payload: Any = None,
    description: str = "",
    schema: dict | None = None,
    editable: bool = False,
    requester: Any = None,
) -> ApprovalRequest:
    """Create the request for ``wait`` with its stages and open the first one.

    ``stages`` are the JSON specs built by ``approvals.authoring.Stage``. Called by
    ``request_approval`` through the wait's ``on_create`` hook, so the request exists exactly
    when the wait does. A stage naming a user who does not exist raises (the run fails with
    that message); a group that does not exist yet is created empty (members can be added
    while the request waits).
    """
    if not stages:
        raise ApprovalError(f"Approval '{key}' needs at least one stage.")
    now = clock.now()
    requester_user = resolve_user(requester, what=f"requester of approval '{key}'", strict=False)
    request = ApprovalRequest.objects.create(
        run_id=wait.run_id,
        wait=wait,
        key=key,
        title=title[:500],
        description=description,
        payload=payload,
        value=payload,
        schema=schema,
        editable=editable,
        requester=requester_user,
        requester_name=_name(requester_user) if requester_user else str(requester or ""),
        created_at=now,
        updated_at=now,
    )
    created = []
    for order, spec in enumerate(stages):
        stage = ApprovalStage.objects.create(
            request=request,
            order=order,
            name=spec["name"],
            required=spec.get("required", 1),
            timeout_seconds=spec.get("timeout_seconds"),
            on_timeout=spec.get("on_timeout") or OnTimeout.REJECT,
            escalate_to=_group(spec["escalate_to"]) if spec.get("escalate_to") else None,
            remind_every_seconds=spec.get("remind_every_seconds"),
        )
        what = f"stage '{stage.name}' of approval '{key}'"
        stage.users.set([resolve_user(ref, what=what) for ref in spec.get("users", ())])
        stage.groups.set([_group(ref) for ref in spec.get("groups", ())])
        created.append(stage)
    _audit(
        request,
        None,
        requester_user,
        Action.CREATE,
        Channel.SYSTEM,
        now=now,
        data={"stages": [s.name for s in created]},
    )
    access.rebuild([request.pk])
    _open_stage(request, created[0], now, event=False)
    record_event(request.run_id, "approval.created", approval_summary(request))
    return request


# --- the decision service -----------------------------------------------------------------


def approval_decide(
    *,
    request: ApprovalRequest | Any,
    actor: Any,
    action: str,
    comment: str = "",
    value: Any = NOTHING,
    channel: str = Channel.API,
    stage: ApprovalStage | int | str | None = None,
    users: Any = (),
    groups: Any = (),
) -> DecisionRecord:
    """Apply one person's action to an approval request and return its audit record.

    ``action``: ``approve``; ``reject`` (``comment`` is the required reason); ``edit`` (approve
    with ``value``, validated by the request's JSON schema; the original is kept); ``cancel``
    (the requester or a holder of ``approvals.decide_any``); ``claim`` / ``unclaim``;
    ``reassign`` or ``delegate`` (to ``users`` and/or ``groups``); ``comment``.

    ``stage`` (instance, id or name), when given, is the stage the caller means to act on: if
    that stage is no longer the open one the action is refused with ``ApprovalConflict``
    instead of landing on the next stage.

    Raises ``ApprovalNotAllowed`` (a rule refused; see its ``rule``), ``ApprovalConflict`` (already
    decided / claimed by someone else, or the request is closed), ``InvalidDecision`` (bad input).
    """
    try:
        action = Action(action)
    except ValueError:
        action = None
    if action not in PERSON_ACTIONS:
        allowed = ", ".join(sorted(PERSON_ACTIONS))
        raise InvalidDecision(f"Unknown action; use one of: {allowed}.", {"action": [allowed]})
    if channel not in Channel.values or channel == Channel.SYSTEM:
        raise InvalidDecision(f"Unknown channel '{channel}'.", {"channel": [str(channel)]})
    if actor is None or not getattr(actor, "is_authenticated", False) or not actor.is_active:
        raise ApprovalNotAllowed(
            "Only a signed-in, active user can act on approvals.", rule="no_actor"
        )
    comment = (comment or "").strip()
    if "\x00" in comment:
        # Forms and the API refuse it first; a caller of this service would get PostgreSQL's
        # driver error after the request was locked.
        raise InvalidDecision(
            "The comment contains a NUL character (\\u0000).",
            {"comment": ["Null characters are not allowed."]},
        )
    if action == Action.REJECT and not comment:
        raise InvalidDecision(
            "A reason is required to reject.", {"comment": ["A reason is required."]}
        )
    if action == Action.COMMENT and not comment:
        raise InvalidDecision("The comment is empty.", {"comment": ["This field is required."]})
    if action == Action.EDIT and value is NOTHING:
        raise InvalidDecision(
            "An edit needs the changed value.", {"value": ["This field is required."]}
        )

    with transaction.atomic():
        request = _lock(request)
        now = clock.now()
        if action == Action.COMMENT:
            return _comment(request, actor, comment, channel, now)
        if action == Action.CANCEL:
            return _cancel(request, actor, comment, channel, now)
        current = _current_stage(request, expected=stage)
        _check_may_act(request, current, actor, action)
        if action in STAGE_DECISIONS:
            return _decide(request, current, actor, action, comment, value, channel, now)
        if action == Action.CLAIM:
            return _claim(request, current, actor, comment, channel, now)
        if action == Action.UNCLAIM:
            return _unclaim(request, current, actor, comment, channel, now)
        return _reassign(request, current, actor, action, comment, channel, now, users, groups)


def approval_decide_by_link(*, token: str, comment: str = "") -> DecisionRecord:
    """Decide through a signed link (email / chat): the link names the user, stage and action.

    A link works once: its nonce is recorded in the decision's transaction. Raises
    ``LinkInvalid`` / ``LinkExpired`` / ``LinkUsed`` besides ``approval_decide``'s errors.
    """
    claims = links.read_token(token)
    user = get_user_model().objects.filter(pk=claims.user_id, is_active=True).first()
    try:
        with transaction.atomic():
            if UsedDecisionLink.objects.filter(nonce=claims.nonce).exists():
                raise LinkUsed("This link was already used.")
            record = approval_decide(
                request=claims.request_id,
                stage=claims.stage_id,
                actor=user,
                action=claims.action,
                comment=comment,
                channel=Channel.EMAIL_LINK,
            )
            UsedDecisionLink.objects.create(
                nonce=claims.nonce,
                request_id=claims.request_id,
                user=user,
                action=claims.action,
                used_at=clock.now(),
            )
    except IntegrityError as exc:  # the same link used concurrently: the other use won
        raise LinkUsed("This link was already used.") from exc
    return record


# --- deadlines, escalation, reminders (driven by the engine's sweeper) ----------------------


def approval_deadline(wait: WaitPoint, now: datetime) -> None:
    """The sweeper's handler for a passed deadline of an approval wait (inside a transaction).

    Applies the open stage's ``on_timeout``: ``reject`` (the request times out), ``approve``
    (the stage is approved by the system and the next one opens) or ``escalate`` (the stage is
    reassigned to its escalation group with a fresh deadline, once; a second expiry times out).
    """
    request_id = (
        ApprovalRequest.objects.filter(wait_id=wait.pk).values_list("pk", flat=True).first()
    )
    if request_id is None:  # a wait without its request cannot be decided by anyone: close it
        journal.wait_resolve(wait.pk, status=WaitStatus.TIMED_OUT)
        return
    request = _lock(request_id)
    stage = request.current_stage
    if not request.is_open or stage is None or not stage.is_open:
        return
    if stage.deadline is None or stage.deadline > now:
        # The wait's deadline lags the stage's (e.g. a decision opened the next stage): realign.
        _sync_wait_deadline(request, stage)
        return
    if stage.on_timeout == OnTimeout.ESCALATE and stage.escalation_count == 0 and stage.escalate_to:
        _escalate(request, stage, now)
    elif stage.on_timeout == OnTimeout.APPROVE:
        _close_stage(stage, StageStatus.APPROVED, now)
        _audit(
            request,
            stage,
            None,
            Action.TIMEOUT,
            Channel.SYSTEM,
            now=now,
            comment="Deadline passed: approved automatically.",
            data={"outcome": "approved"},
        )
        _stage_passed(request, stage, None, now)
    else:
        _close_stage(stage, StageStatus.TIMED_OUT, now)
        _audit(
            request,
            stage,
            None,
            Action.TIMEOUT,
            Channel.SYSTEM,
            now=now,
            comment="Deadline passed: no decision.",
            data={"outcome": "timed_out"},
        )
        _finish(request, ApprovalStatus.TIMED_OUT, None, f"Stage '{stage.name}' timed out.", now)


def send_due_reminders(now: datetime) -> int:
    """Sweep hook: remind the assignees of open stages whose reminder is due."""
    due = list(
        ApprovalStage.objects.filter(status=StageStatus.OPEN, next_reminder_at__lte=now)
        .order_by("next_reminder_at")
        .values_list("request_id", "pk")[:BATCH]
    )
    sent = 0
    for request_id, stage_id in due:
        with transaction.atomic():
            request = _lock(request_id)
            stage = ApprovalStage.objects.get(pk=stage_id)
            if not stage.is_open or not stage.next_reminder_at or stage.next_reminder_at > now:
                continue  # another sweeper got here first, or it was decided meanwhile
            stage.next_reminder_at = _next_reminder(stage, now)
            stage.save(update_fields=["next_reminder_at"])
            _audit(
                request,
                stage,
                None,
                Action.REMIND,
                Channel.SYSTEM,
                now=now,
                data={"next_reminder_at": stage.next_reminder_at},
            )
            _event(request, "reminder", stage=stage)
            notifications.notify("reminder", request, stage=stage)
            sent += 1
    return sent


def cancel_requests_of_run(*, run_id: Any, reason: str = "The run was cancelled.") -> int:
    """Close the open requests of a cancelled run (``run_cancelled`` receiver; inside the
    cancelling transaction, which already closed the run's waits)."""
    ids = list(
        ApprovalRequest.objects.filter(run_id=run_id, status=ApprovalStatus.PENDING).values_list(
            "pk", flat=True
        )
    )
    now = clock.now()
    for request_id in ids:
        request = _lock(request_id)
        if not request.is_open:
            continue
        stage = request.current_stage
        _close_open_stages(request, now)
        _audit(request, stage, None, Action.CANCEL, Channel.SYSTEM, now=now, comment=reason)
        _finish(request, ApprovalStatus.CANCELLED, None, reason, now, resolve_wait=False)
    return len(ids)


# --- the actions --------------------------------------------------------------------------


def _decide(request, stage, actor, action, comment, value, channel, now) -> DecisionRecord:
    if action in APPROVING_ACTIONS:
        _check_four_eyes(request, actor)
        _check_one_approval_per_person(request, stage, actor)
    if action == Action.REJECT:
        _close_stage(stage, StageStatus.REJECTED, now)
        record = _audit(request, stage, actor, action, channel, now=now, comment=comment)
        _finish(request, ApprovalStatus.REJECTED, actor, comment, now)
        return record

    original = request.value
    if action == Action.EDIT:
        request.value = _validated_edit(request, value)
        request.save(update_fields=["value"])
    record = _audit(
        request,
        stage,
        actor,
        action,
        channel,
        now=now,
        comment=comment,
        value=request.value if action == Action.EDIT else None,
        original_value=original if action == Action.EDIT else None,
    )
    released = stage.claimed_by_id == actor.pk
    if released:  # their part is done; the claim would only block others
        stage.claimed_by, stage.claimed_at = None, None
        stage.save(update_fields=["claimed_by", "claimed_at"])
    approvals = (
        DecisionRecord.objects.filter(stage=stage, action__in=APPROVING_ACTIONS)
        .values("actor_id")
        .distinct()
        .count()
    )
    if approvals >= stage.required:
        _close_stage(stage, StageStatus.APPROVED, now)
        _stage_passed(request, stage, actor, now)  # the next stage's queue, or none
    else:
        if released:
            queue.rebuild([request.pk])
        _event(request, "decided", stage=stage, by=actor, action=action)
    return record


def _claim(request, stage, actor, comment, channel, now) -> DecisionRecord:
    _check_four_eyes(request, actor)
    if stage.claimed_by_id is not None:
        who = _name(stage.claimed_by)
        raise ApprovalConflict(
            f"Stage '{stage.name}' is already claimed by {who}.", decided_by=who, status="claimed"
        )
    stage.claimed_by, stage.claimed_at = actor, now
    stage.save(update_fields=["claimed_by", "claimed_at"])
    queue.rebuild([request.pk])
    record = _audit(request, stage, actor, Action.CLAIM, channel, now=now, comment=comment)
    _event(request, "claimed", stage=stage, by=actor)
    return record


def _unclaim(request, stage, actor, comment, channel, now) -> DecisionRecord:
    if stage.claimed_by_id is None:
        raise ApprovalConflict(f"Stage '{stage.name}' is not claimed.", status="unclaimed")
    if stage.claimed_by_id != actor.pk and not may_decide_any(actor):
        raise ApprovalNotAllowed(
            f"Only {_name(stage.claimed_by)}, who claimed stage '{stage.name}', can release it.",
            rule="not_claimer",
        )
    previous = _name(stage.claimed_by)
    stage.claimed_by, stage.claimed_at = None, None
    stage.save(update_fields=["claimed_by", "claimed_at"])
    queue.rebuild([request.pk])
    record = _audit(
        request,
        stage,
        actor,
        Action.UNCLAIM,
        channel,
        now=now,
        comment=comment,
        data={"was_claimed_by": previous},
    )
    _event(request, "unclaimed", stage=stage, by=actor)
    return record


def _reassign(request, stage, actor, action, comment, channel, now, users, groups):
    new_users = [
        resolve_user(u, what="the new assignee", error=InvalidDecision) for u in users or ()
    ]
    new_groups = [_existing_group(g) for g in groups or ()]
    if not new_users and not new_groups:
        raise InvalidDecision(
            "Name the users or groups to hand the stage to.",
            {"users": ["Give at least one user or group."]},
        )
    if request.requester_id and any(u.pk == request.requester_id for u in new_users):
        raise InvalidDecision(
            "A request cannot be assigned to its own requester.",
            {"users": ["The requester cannot approve their own request."]},
        )
    previous = _assignees(stage)
    stage.users.set(new_users)
    stage.groups.set(new_groups)
    stage.claimed_by, stage.claimed_at = None, None
    stage.save(update_fields=["claimed_by", "claimed_at"])
    record = _audit(
        request,
        stage,
        actor,
        action,
        channel,
        now=now,
        comment=comment,
        data={"from": previous, "to": _assignees(stage)},
    )
    access.rebuild([request.pk])  # the previous assignees no longer see it (unless involved)
    queue.rebuild([request.pk])
    _event(request, "reassigned", stage=stage, by=actor, to=_assignees(stage))
    notifications.notify("approval_needed", request, stage=stage)
    return record


def _comment(request, actor, comment, channel, now) -> DecisionRecord:
    involved = (
        may_decide_any(actor)
        or _is_requester(request, actor)
        or any(is_assignee(s, actor) for s in request.stages.all())
    )
    if not involved:
        raise ApprovalNotAllowed(
            "Only the requester, the assignees and holders of approvals.decide_any can comment.",
            rule="not_assignee",
        )
    record = _audit(
        request, request.current_stage, actor, Action.COMMENT, channel, now=now, comment=comment
    )
    _event(request, "commented", by=actor, comment=comment)
    return record


def _cancel(request, actor, comment, channel, now) -> DecisionRecord:
    _check_open(request)
    if not (_is_requester(request, actor) or may_decide_any(actor)):
        raise ApprovalNotAllowed(
            "Only the requester or a holder of approvals.decide_any can cancel a request.",
            rule="not_assignee",
        )
    stage = request.current_stage
    _close_open_stages(request, now)
    record = _audit(request, stage, actor, Action.CANCEL, channel, now=now, comment=comment)
    _finish(request, ApprovalStatus.CANCELLED, actor, comment, now)
    return record


# --- rules --------------------------------------------------------------------------------


def _check_open(request: ApprovalRequest) -> None:
    if not request.is_open:
        who = _name(request.decided_by) if request.decided_by_id else None
        by = f"by {who}" if who else "by the system"
        when = f"{request.decided_at:%Y-%m-%d %H:%M:%S}" if request.decided_at else ""
        raise ApprovalConflict(
            f"Approval '{request.title}' was already {request.get_status_display().lower()} "
            f"{by} at {when}.",
            decided_by=who,
            status=request.status,
        )


def _current_stage(request: ApprovalRequest, expected: Any = None) -> ApprovalStage:
    """The open stage; refuses when the request is closed or ``expected`` is no longer open."""
    if expected is not None:
        stage = _find_stage(request, expected)
        if stage.status == StageStatus.QUEUED:
            _check_open(request)  # a closed request will never reach it
            raise ApprovalConflict(f"Stage '{stage.name}' is not open yet.", status=stage.status)
        if not stage.is_open:
            decision = stage_decider(stage)
            who = (decision.actor_name or None) if decision else None
            when = f" at {stage.decided_at:%Y-%m-%d %H:%M:%S}" if stage.decided_at else ""
            raise ApprovalConflict(
                f"Stage '{stage.name}' was already {stage.get_status_display().lower()}"
                f" by {who or 'the system'}{when}.",
                decided_by=who,
                status=stage.status,
            )
    _check_open(request)
    stage = request.current_stage
    if stage is None or not stage.is_open:  # cannot happen while the request is pending
        raise ApprovalError(f"Approval '{request.title}' has no open stage.")
    return stage


def _check_may_act(request, stage, actor, action) -> None:
    """Only assignees (or holders of ``approvals.decide_any``) act on a stage; while someone
    holds a claim on it, only they (or a decide-any holder) decide or reassign it. (A second
    claim is a conflict, and releasing has its own rule: see ``_claim`` / ``_unclaim``.)"""
    decide_any = may_decide_any(actor)
    if not decide_any and not is_assignee(stage, actor):
        raise ApprovalNotAllowed(
            f"{_name(actor)} is not an assignee of stage '{stage.name}' of '{request.title}'.",
            rule="not_assignee",
        )
    claim_rules_elsewhere = action in (Action.CLAIM, Action.UNCLAIM)
    if stage.claimed_by_id not in (None, actor.pk) and not decide_any and not claim_rules_elsewhere:
        raise ApprovalNotAllowed(
            f"Stage '{stage.name}' is claimed by {_name(stage.claimed_by)}.",
            rule="claimed_by_other",
        )


def _check_four_eyes(request, actor) -> None:
    if _is_requester(request, actor):
        raise ApprovalNotAllowed(
            f"{_name(actor)} requested '{request.title}' and cannot approve it (four-eyes rule).",
            rule="own_request",
        )


def _check_one_approval_per_person(request, stage, actor) -> None:
    earlier = (
        DecisionRecord.objects.filter(request=request, actor=actor, action__in=APPROVING_ACTIONS)
        .select_related("stage")
        .first()
    )
    if earlier is None:
        return
    if earlier.stage_id == stage.pk:
        raise ApprovalNotAllowed(
            f"{_name(actor)} already approved stage '{stage.name}'; an approval counts once.",
            rule="already_approved",
        )
    raise ApprovalNotAllowed(
        f"{_name(actor)} already approved stage '{earlier.stage.name}' of this request; one "
        "person approves at most one stage.",
        rule="one_stage_per_person",
    )


def _is_requester(request, actor) -> bool:
    if request.requester_id is not None:
        return request.requester_id == actor.pk
    return bool(request.requester_name) and request.requester_name == _name(actor)


def _validated_edit(request: ApprovalRequest, value: Any) -> Any:
    from jsonschema import Draft202012Validator

    if not request.editable:
        raise ApprovalNotAllowed(f"'{request.title}' is not editable.", rule="not_editable")
    try:
        value = to_json(value, what="edited value")
    except NotSerializable as exc:
        raise InvalidDecision(str(exc), {"value": [str(exc)]}) from exc
    if request.schema:
        errors = sorted(
            Draft202012Validator(request.schema).iter_errors(value), key=lambda e: list(e.path)
        )
        if errors:
            raise InvalidDecision(
                "The edited value does not match the request's schema.",
                {".".join(str(p) for p in e.absolute_path) or "value": [e.message] for e in errors},
            )
    return value


# --- state changes ------------------------------------------------------------------------


def _open_stage(request, stage, now, *, event: bool = True) -> None:
    stage.status, stage.opened_at = StageStatus.OPEN, now
    stage.deadline = (
        now + timedelta(seconds=stage.timeout_seconds) if stage.timeout_seconds else None
    )
    stage.next_reminder_at = None
    stage.next_reminder_at = _next_reminder(stage, now)
    stage.save(update_fields=["status", "opened_at", "deadline", "next_reminder_at"])
    request.current_stage = stage
    request.updated_at = now
    request.save(update_fields=["current_stage", "updated_at"])
    queue.rebuild([request.pk])
    _sync_wait_deadline(request, stage)
    if event:
        _event(request, "stage_opened", stage=stage)
    notifications.notify("approval_needed", request, stage=stage)


def _next_reminder(stage, now) -> datetime | None:
    """The next reminder strictly before the deadline (None: no more reminders)."""
    if not stage.remind_every_seconds:
        return None
    step = timedelta(seconds=stage.remind_every_seconds)
    at = (stage.next_reminder_at or now) + step
    while at <= now:  # the sweeper was down: skip the reminders that were missed
        at += step
    if stage.deadline is not None and at >= stage.deadline:
        return None
    return at


def _sync_wait_deadline(request, stage) -> None:
    """The wait's deadline is the open stage's: the engine's sweeper calls
    ``approval_deadline`` when it passes."""
    WaitPoint.objects.filter(pk=request.wait_id).update(deadline=stage.deadline)


def _escalate(request, stage, now) -> None:
    previous = _assignees(stage)
    stage.users.clear()
    stage.groups.set([stage.escalate_to])
    stage.claimed_by, stage.claimed_at = None, None
    stage.escalation_count += 1
    stage.deadline = now + timedelta(seconds=stage.timeout_seconds)
    stage.next_reminder_at = None
    stage.next_reminder_at = _next_reminder(stage, now)
    stage.save(
        update_fields=[
            "claimed_by",
            "claimed_at",
            "escalation_count",
            "deadline",
            "next_reminder_at",
        ]
    )
    _sync_wait_deadline(request, stage)
    _audit(
        request,
        stage,
        None,
        Action.ESCALATE,
        Channel.SYSTEM,
        now=now,
        comment=f"Deadline passed: escalated to {stage.escalate_to.name}.",
        data={"from": previous, "to": _assignees(stage), "deadline": stage.deadline},
    )
    access.rebuild([request.pk])
    queue.rebuild([request.pk])
    _event(request, "escalated", stage=stage, to=stage.escalate_to.name, deadline=stage.deadline)
    notifications.notify("approval_escalated", request, stage=stage)


def _close_stage(stage, status, now) -> None:
    stage.status, stage.decided_at = status, now
    stage.next_reminder_at = None
    stage.claimed_by, stage.claimed_at = None, None
    stage.save(
        update_fields=["status", "decided_at", "next_reminder_at", "claimed_by", "claimed_at"]
    )


def _close_open_stages(request, now) -> None:
    for stage in request.stages.filter(status=StageStatus.OPEN):
        _close_stage(stage, StageStatus.CANCELLED, now)


def _stage_passed(request, stage, actor, now) -> None:
    """An approved stage opens the next one, or approves the request after the last."""
    following = request.stages.filter(order__gt=stage.order).order_by("order").first()
    if following is None:
        _finish(request, ApprovalStatus.APPROVED, actor, "", now)
        return
    _event(request, "decided", stage=stage, by=actor, action="approve")
    _open_stage(request, following, now)


def _finish(request, status, actor, reason, now, *, resolve_wait: bool = True) -> None:
    request.status, request.decided_at, request.updated_at = status, now, now
    request.decided_by, request.reason = actor, reason or ""
    request.due_at = None  # in the same write: a closed request is due no more
    request.save(
        update_fields=["status", "decided_at", "updated_at", "decided_by", "reason", "due_at"]
    )
    queue.rebuild([request.pk])  # it waits for no one any more
    # Every write of the decision is done. The wait's resolution, the run event and the
    # notification below all describe this final state: read the stages and decisions once.
    getattr(request, "_prefetched_objects_cache", {}).clear()
    prefetch_related_objects([request], "stages", "decisions")
    if resolve_wait:
        wait_status = {
            ApprovalStatus.TIMED_OUT: WaitStatus.TIMED_OUT,
            ApprovalStatus.CANCELLED: WaitStatus.CANCELLED,
        }.get(status, WaitStatus.RESOLVED)
        journal.wait_resolve(
            request.wait_id,
            status=wait_status,
            resolution=to_json(approval_resolution(request), what="approval decision"),
            resolved_by=actor,
        )
    _event(request, "decided", by=actor, action=status, touch=False)  # saved just above
    notifications.notify("approval_resolved", request)


# --- helpers ------------------------------------------------------------------------------


def _lock(request: ApprovalRequest | Any) -> ApprovalRequest:
    # The run is locked first (the engine's order: run, then its rows). A request's run never
    # changes, so an instance's run_id is as good as a fresh read of it (and a request is never
    # deleted under its caller: its audit records protect it).
    if isinstance(request, ApprovalRequest):
        pk, run_id = request.pk, request.run_id
    else:
        pk = _as_uuid(request)
        run_id = None
        if pk is not None:
            run_id = ApprovalRequest.objects.filter(pk=pk).values_list("run_id", flat=True).first()
    if run_id is None:
        raise ApprovalNotFound(f"No approval request with id {pk}.")
    list(WorkflowRun.objects.select_for_update().filter(pk=run_id).values_list("pk", flat=True))
    # The open stage comes in the same read (every caller looks at it next); only the request
    # row is locked, as before: the run's lock already orders writers of its requests.
    return (
        ApprovalRequest.objects.select_for_update(of=("self",))
        .select_related("current_stage")
        .get(pk=pk)
    )


def _find_stage(request, ref) -> ApprovalStage:
    if isinstance(ref, ApprovalStage):
        ref = ref.pk
    query = request.stages.all()
    stage = query.filter(name=ref).first() if isinstance(ref, str) else None
    # Not isdigit(): "²" passes it and then fails in int(); an id is ASCII digits in range.
    stage_id = whole_number(ref)
    if stage is None and stage_id is not None:
        stage = query.filter(pk=stage_id).first()
    if stage is None:
        raise InvalidDecision(f"'{request.title}' has no stage {ref}.", {"stage": [str(ref)]})
    return stage


def _audit(
    request,
    stage,
    actor,
    action,
    channel,
    *,
    now,
    comment="",
    value=None,
    original_value=None,
    data=None,
) -> DecisionRecord:
    access.add_actor(request, actor)
    return DecisionRecord.objects.create(
        request=request,
        stage=stage,
        actor=actor,
        actor_name=_name(actor) if actor else "",
        action=action,
        channel=channel,
        comment=comment,
        value=value,
        original_value=original_value,
        data=to_json(data or {}, what="decision data"),
        created_at=now,
    )


def _event(
    request, change: str, *, stage=None, by=None, action=None, touch: bool = True, **extra
) -> None:
    """Record an ``approval.updated`` run event; ``touch`` also moves ``updated_at`` (callers
    that have just saved it pass False)."""
    data = approval_summary(request)
    data["change"] = change
    if stage is not None:
        data["stage"] = stage.name
    if by is not None:
        data["by"] = _name(by)
    if action is not None:
        data["action"] = str(action)
    data.update(extra)
    if touch:
        request.updated_at = clock.now()
        ApprovalRequest.objects.filter(pk=request.pk).update(updated_at=request.updated_at)
    record_event(request.run_id, "approval.updated", data)


def _assignees(stage) -> dict:
    return {
        "users": sorted(_name(u) for u in stage.users.all()),
        "groups": sorted(stage.groups.values_list("name", flat=True)),
    }


def _name(user) -> str:
    return user.get_username() if user is not None else ""


def resolve_user(ref: Any, *, what: str, strict: bool = True, error=ApprovalError):
    """A user from a User, a primary key or a username (then an email address).

    Unknown: raises ``error`` when ``strict``, else returns None.
    """
    User = get_user_model()
    if ref is None or ref == "":
        return None
    if isinstance(ref, User):
        return ref
    user = None
    if isinstance(ref, int) and not isinstance(ref, bool):
        user = User.objects.filter(pk=ref).first()
    elif isinstance(ref, str):
        user = User.objects.filter(**{User.USERNAME_FIELD: ref}).first() or (
            User.objects.filter(email__iexact=ref).first() if "@" in ref else None
        )
    if user is None and strict:
        message = f"The {what} names user {ref!r}, who does not exist."
        if error is InvalidDecision:
            raise InvalidDecision(message, {"users": [f"Unknown user {ref!r}."]})
        raise error(message)
    return user


def _as_uuid(value: Any) -> uuid.UUID | None:
    try:
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
    except ValueError:
        return None


def _group(ref: Any) -> Group:
    if isinstance(ref, Group):
        return ref
    group, created = Group.objects.get_or_create(name=str(ref))
    if created:
        log.warning("Approval stage named group %r, which did not exist; created it empty", ref)
    return group


def _existing_group(ref: Any) -> Group:
    if isinstance(ref, Group):
        return ref
    # Not isdigit(): "²" passes it and then fails as an id. Group ids are 32-bit (AutoField).
    group_id = whole_number(ref, maximum=2**31 - 1)
    query = Group.objects.filter(Q(name=str(ref)) | Q(pk=group_id))
    group = query.first()
    if group is None:
        raise InvalidDecision(
            f"There is no group {ref!r}.", {"groups": [f"Unknown group {ref!r}."]}
        )
    return group


__all__ = [
    "NOTHING",
    "approval_create",
    "approval_deadline",
    "approval_decide",
    "approval_decide_by_link",
    "cancel_requests_of_run",
    "send_due_reminders",
]
