"""Approval requests, their ordered stages, and the append-only record of everything done to them.

A request belongs to a run and to the run's wait point (``WaitKind.APPROVAL``); it is created in
the transaction that registers the wait. Exactly one stage is ``open`` at a time while the
request is pending; stages after it are ``queued``. Only ``approvals.services`` changes these
rows. ``DecisionRecord`` rows are never updated or deleted (refused here and, on PostgreSQL, by
a trigger).
"""

import uuid

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models import Q

from workflows.models import WaitPoint, WorkflowRun

from .errors import AuditImmutable


class ApprovalStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    TIMED_OUT = "timed_out", "Timed out"
    CANCELLED = "cancelled", "Cancelled"


class StageStatus(models.TextChoices):
    QUEUED = "queued", "Queued"  # a later stage, not reached yet
    OPEN = "open", "Waiting"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    TIMED_OUT = "timed_out", "Timed out"
    CANCELLED = "cancelled", "Cancelled"


class OnTimeout(models.TextChoices):
    REJECT = "reject", "Reject"
    APPROVE = "approve", "Approve"
    ESCALATE = "escalate", "Escalate"


class ApprovalRequest(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    run = models.ForeignKey(WorkflowRun, on_delete=models.CASCADE, related_name="approvals")
    wait = models.OneToOneField(WaitPoint, on_delete=models.CASCADE, related_name="approval")
    key = models.CharField(max_length=200, help_text="The name given in the workflow code.")
    title = models.CharField(max_length=500)
    description = models.TextField(blank=True)
    # What the workflow proposed (kept unchanged) and the value as it stands after edits.
    payload = models.JSONField(null=True, blank=True, encoder=DjangoJSONEncoder)
    value = models.JSONField(null=True, blank=True, encoder=DjangoJSONEncoder)
    editable = models.BooleanField(default=False)
    schema = models.JSONField(
        null=True, blank=True, help_text="JSON Schema an edited value must match."
    )
    requester = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="approval_requests",
    )
    # As the workflow named the requester (also when no such user exists).
    requester_name = models.CharField(max_length=255, blank=True)
    status = models.CharField(
        max_length=16, choices=ApprovalStatus.choices, default=ApprovalStatus.PENDING
    )
    current_stage = models.ForeignKey(
        "ApprovalStage", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The open stage's deadline while the request is pending (null once closed), kept with the
    # queue entries by ``approvals.queue``: queues sort and filter on it without joining
    # 100,000 open stages (bench/README, queue pages). The stage's own deadline stays the truth;
    # readers of due_at also ask for pending requests, which a worker of the version before
    # it (during a rollout) closes without clearing it.
    due_at = models.DateTimeField(null=True, blank=True, editable=False)
    reason = models.TextField(blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        permissions = [("decide_any", "Can decide any approval request (not only assigned ones)")]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=ApprovalStatus.values), name="approval_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(status="pending") | Q(decided_at__isnull=False),
                name="approval_closed_has_decided_at",
            ),
        ]
        indexes = [
            models.Index(fields=["status", "created_at"], name="approval_status_idx"),
            # "All I may see", newest first: a page walks this index and checks each request's
            # access rows, instead of sorting every visible request (bench/README).
            models.Index(fields=["created_at"], name="approval_created_idx"),
            # The queues read only pending requests, with exactly these columns and in this
            # order: from this index alone (an index-only scan on PostgreSQL), however many
            # decided requests the table holds (bench/README, queue pages with a past).
            models.Index(
                fields=["due_at", "created_at", "id", "requester"],
                condition=Q(status="pending"),
                name="approval_queue_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.title} ({self.status})"

    @property
    def is_open(self) -> bool:
        return self.status == ApprovalStatus.PENDING

    @property
    def edited(self) -> bool:
        return self.value != self.payload


class ApprovalStage(models.Model):
    request = models.ForeignKey(ApprovalRequest, on_delete=models.CASCADE, related_name="stages")
    order = models.PositiveIntegerField()
    name = models.CharField(max_length=100)
    users = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="+")
    groups = models.ManyToManyField("auth.Group", blank=True, related_name="+")
    required = models.PositiveIntegerField(default=1)
    status = models.CharField(
        max_length=16, choices=StageStatus.choices, default=StageStatus.QUEUED
    )
    # Seconds the stage may stay open; its deadline is set when it opens (and on escalation).
    timeout_seconds = models.FloatField(null=True, blank=True)
    deadline = models.DateTimeField(null=True, blank=True)
    on_timeout = models.CharField(
        max_length=16, choices=OnTimeout.choices, default=OnTimeout.REJECT
    )
    escalate_to = models.ForeignKey(
        "auth.Group", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    escalation_count = models.PositiveIntegerField(default=0)
    remind_every_seconds = models.FloatField(null=True, blank=True)
    next_reminder_at = models.DateTimeField(null=True, blank=True)
    claimed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    claimed_at = models.DateTimeField(null=True, blank=True)
    opened_at = models.DateTimeField(null=True, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["request", "order"]
        constraints = [
            models.UniqueConstraint(fields=["request", "order"], name="stage_unique_order"),
            models.CheckConstraint(condition=Q(required__gte=1), name="stage_required_positive"),
            models.CheckConstraint(
                condition=Q(status__in=StageStatus.values), name="stage_status_valid"
            ),
        ]
        indexes = [
            models.Index(fields=["status", "deadline"], name="stage_due_idx"),
            # Open stages by id, for lists that join a request's open stage (the admin's stage
            # and overdue filters) without reading the stages of the past. The queues no
            # longer join stages at all (``due_at``, queue entries).
            models.Index(
                fields=["id", "deadline", "claimed_by"],
                condition=Q(status="open"),
                name="stage_open_idx",
            ),
            models.Index(fields=["status", "next_reminder_at"], name="stage_reminder_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.status})"

    @property
    def is_open(self) -> bool:
        return self.status == StageStatus.OPEN


class UserOrGroupRow(models.Model):
    """A row naming one user or one group (never both: each subclass's check constraint)."""

    # Indexed by each subclass's unique constraints, which begin with them.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        on_delete=models.CASCADE,
        related_name="+",
        db_index=False,
    )
    group = models.ForeignKey(
        "auth.Group", null=True, on_delete=models.CASCADE, related_name="+", db_index=False
    )

    class Meta:
        abstract = True

    @property
    def principal(self) -> str:
        return f"user {self.user_id}" if self.user_id else f"group {self.group_id}"


class ApprovalAccess(UserOrGroupRow):
    """One user or group involved with a request: named on one of its stages (now), acted on it,
    requested it, or started its run. Readers ask this table who may see a request
    (``approvals.selectors``) instead of joining every request's stages, assignments and
    audit: a reviewer's lists and counts then read an index, however long the past
    (bench/README, queue pages). Derived from those rows and kept by ``approvals.access``
    only, in the transactions that change them.
    """

    request = models.ForeignKey(ApprovalRequest, on_delete=models.CASCADE, related_name="+")
    # The request's run, for the runs lists' visibility (one index probe per listed run).
    run = models.ForeignKey(WorkflowRun, on_delete=models.CASCADE, related_name="+")

    class Meta:
        verbose_name = "approval access"
        verbose_name_plural = "approval access"
        constraints = [
            models.CheckConstraint(
                condition=Q(user__isnull=False, group__isnull=True)
                | Q(user__isnull=True, group__isnull=False),
                name="access_one_principal",
            ),
            models.UniqueConstraint(
                fields=["user", "request"],
                condition=Q(user__isnull=False),
                name="access_user_unique",
            ),
            models.UniqueConstraint(
                fields=["group", "request"],
                condition=Q(group__isnull=False),
                name="access_group_unique",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.principal} on {self.request_id}"


class QueueEntry(UserOrGroupRow):
    """One way a pending request waits for someone: its open stage names a user or a group,
    or a user has claimed it. Queues ("waiting for me") read these rows' indexes instead of
    weighing every open stage's assignments against a reviewer's groups (bench/README, queue
    pages). Derived from the request, its open stage and that stage's assignees, and kept by
    ``approvals.queue`` only, in the transactions that change them; a closed request has none.
    """

    request = models.ForeignKey(
        ApprovalRequest, on_delete=models.CASCADE, related_name="queue_entries"
    )
    # The user's claim on the stage, rather than their name on it (they may have both).
    claimed = models.BooleanField(default=False)

    class Meta:
        verbose_name = "queue entry"
        verbose_name_plural = "queue entries"
        constraints = [
            models.CheckConstraint(
                condition=Q(user__isnull=False, group__isnull=True)
                | Q(user__isnull=True, group__isnull=False, claimed=False),
                name="queue_one_principal",
            ),
            models.UniqueConstraint(
                fields=["user", "claimed", "request"],
                condition=Q(user__isnull=False),
                name="queue_user_unique",
            ),
            models.UniqueConstraint(
                fields=["group", "request"],
                condition=Q(group__isnull=False),
                name="queue_group_unique",
            ),
        ]

    def __str__(self) -> str:
        claimed = " (claimed)" if self.claimed else ""
        return f"{self.request_id} waits for {self.principal}{claimed}"


class Action(models.TextChoices):
    CREATE = "create", "Created"
    APPROVE = "approve", "Approved"
    REJECT = "reject", "Rejected"
    EDIT = "edit", "Edited and approved"
    CANCEL = "cancel", "Cancelled"
    CLAIM = "claim", "Claimed"
    UNCLAIM = "unclaim", "Released"
    REASSIGN = "reassign", "Reassigned"
    DELEGATE = "delegate", "Delegated"
    COMMENT = "comment", "Commented"
    ESCALATE = "escalate", "Escalated"
    TIMEOUT = "timeout", "Timed out"
    REMIND = "remind", "Reminder sent"


# Actions that count as a person's approval of a stage.
APPROVING_ACTIONS = frozenset({Action.APPROVE, Action.EDIT})


class Channel(models.TextChoices):
    ADMIN = "admin", "Admin"
    REVIEW = "review", "Review page"
    API = "api", "API"
    WEBHOOK = "webhook", "Webhook"
    EMAIL_LINK = "email-link", "Signed link"
    SYSTEM = "system", "System"


class DecisionQuerySet(models.QuerySet):
    """Bulk changes are refused too: the audit only ever grows."""

    def update(self, **kwargs):
        raise AuditImmutable("Approval decisions are append-only: update() is refused.")

    def delete(self):
        raise AuditImmutable("Approval decisions are append-only: delete() is refused.")

    def bulk_update(self, *args, **kwargs):
        raise AuditImmutable("Approval decisions are append-only: bulk_update() is refused.")


class DecisionRecord(models.Model):
    """One action on a request: who, what, when, through which channel, with which values."""

    # PROTECT: the audit outlives nothing it describes; runs with approvals cannot be deleted.
    request = models.ForeignKey(ApprovalRequest, on_delete=models.PROTECT, related_name="decisions")
    stage = models.ForeignKey(
        ApprovalStage, null=True, blank=True, on_delete=models.PROTECT, related_name="decisions"
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # The actor's username at the time (the record stays readable whatever happens to the user).
    actor_name = models.CharField(max_length=255, blank=True)
    action = models.CharField(max_length=16, choices=Action.choices)
    channel = models.CharField(max_length=16, choices=Channel.choices)
    comment = models.TextField(blank=True)
    value = models.JSONField(null=True, blank=True, encoder=DjangoJSONEncoder)
    original_value = models.JSONField(null=True, blank=True, encoder=DjangoJSONEncoder)
    # Action details: new assignees, new deadline, stage outcome...
    data = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    created_at = models.DateTimeField()

    objects = DecisionQuerySet.as_manager()

    class Meta:
        ordering = ["request", "created_at", "id"]
        verbose_name = "decision (audit)"
        verbose_name_plural = "decisions (audit)"
        indexes = [models.Index(fields=["actor", "action"], name="decision_actor_idx")]

    def __str__(self) -> str:
        who = self.actor_name or "system"
        return f"{who} {self.action} ({self.channel})"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise AuditImmutable("Approval decisions are append-only: a saved one cannot change.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AuditImmutable("Approval decisions are append-only: delete() is refused.")


class UsedDecisionLink(models.Model):
    """A signed decision link that was used; its nonce cannot be used again."""

    nonce = models.CharField(max_length=64, unique=True)
    request = models.ForeignKey(ApprovalRequest, on_delete=models.CASCADE, related_name="+")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    action = models.CharField(max_length=16)
    used_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.nonce} used {self.used_at:%Y-%m-%d %H:%M}"


class NotificationStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"


class Notification(models.Model):
    """One message to one channel (and, for email, one recipient), with its delivery attempts.

    The message is rendered when the notification is created (in the decision's transaction);
    delivery only sends it, so a later change of the request cannot alter what was announced.
    """

    request = models.ForeignKey(
        ApprovalRequest, on_delete=models.CASCADE, related_name="notifications"
    )
    hook = models.CharField(max_length=32)
    channel = models.CharField(max_length=100, help_text="The configured channel's name.")
    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    message = models.JSONField(default=dict, encoder=DjangoJSONEncoder)
    status = models.CharField(
        max_length=16, choices=NotificationStatus.choices, default=NotificationStatus.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    max_attempts = models.PositiveIntegerField(default=5)
    last_error = models.TextField(blank=True)
    next_attempt_at = models.DateTimeField()
    enqueued_at = models.DateTimeField(null=True, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="notification_due_idx")]

    def __str__(self) -> str:
        return f"{self.hook} via {self.channel} ({self.status})"
