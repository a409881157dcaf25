"""Durable state of workflow runs. The database is the single source of truth.

A run is advanced by replaying its workflow function from the top; every durable operation
(step, sleep, wait, input request, emitted event, recorded value) takes the next ``sequence``
number of the run and leaves a ``Step`` row, so a replay returns recorded results instead of
executing anything twice. Waits additionally have a ``WaitPoint`` describing what they wait for.
"""

import uuid

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models import Q


class RunStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    WAITING = "waiting", "Waiting"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


TERMINAL_STATUSES = frozenset({RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED})


class WorkflowRun(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # Indexed through Meta.indexes (run_workflow_idx): a plain btree, without the varchar
    # pattern-ops twin db_index=True adds, which no query here uses.
    workflow_name = models.CharField(max_length=200)
    workflow_version = models.PositiveIntegerField()
    input = models.JSONField(default=dict, encoder=DjangoJSONEncoder, blank=True)
    # Only workflows.transitions writes this field. Not indexed on its own: run_due_idx
    # starts with it.
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.PENDING)
    result = models.JSONField(null=True, blank=True, encoder=DjangoJSONEncoder)
    error = models.TextField(blank=True)
    error_type = models.CharField(max_length=200, blank=True)
    traceback = models.TextField(blank=True)
    # NULL (not "") when absent, so the unique constraint ignores runs started without a key.
    idempotency_key = models.CharField(max_length=255, null=True, blank=True)  # noqa: DJ001
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    # Scheduling. A pending run may be claimed once wake_at has passed; enqueued_at tells the
    # sweeper whether a task for it is (probably) still in the broker.
    wake_at = models.DateTimeField(null=True, blank=True)
    enqueued_at = models.DateTimeField(null=True, blank=True)
    # Ownership while running: a worker renews the lease at every step boundary; an expired
    # lease means the worker died and the sweeper hands the run to another one.
    lease_owner = models.CharField(max_length=200, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)

    advance_count = models.PositiveIntegerField(default=0)
    recovery_count = models.PositiveIntegerField(default=0)
    # Last outbox sequence number used for this run (see workflows.outbox).
    event_seq = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["workflow_name", "idempotency_key"],
                condition=Q(idempotency_key__isnull=False),
                name="run_idempotency_key_unique_per_workflow",
            ),
            models.CheckConstraint(
                condition=Q(status__in=RunStatus.values), name="run_status_valid"
            ),
            models.CheckConstraint(
                condition=~Q(status="running") | Q(lease_expires_at__isnull=False),
                name="running_run_has_lease",
            ),
        ]
        # A run's row is updated at every step boundary (event_seq, lease, updated_at). Keeping
        # those columns out of every index lets PostgreSQL update it in place (a HOT update,
        # with the free space migration 0004 leaves on each page) instead of adding an entry
        # to each index per boundary. The sweeper finds expired leases through run_due_idx's
        # "running" prefix: only runs being advanced right now are in it.
        indexes = [
            models.Index(fields=["status", "wake_at"], name="run_due_idx"),
            models.Index(fields=["workflow_name"], name="run_workflow_idx"),
        ]
        permissions = [
            ("manage_any_run", "Can view, cancel and retry any workflow run"),
            ("send_event", "Can send events (notify) to waiting runs"),
            ("answer_any_input", "Can answer any run's input requests"),
        ]

    def __str__(self) -> str:
        return f"{self.workflow_name} v{self.workflow_version} {self.id}"

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES


class StepKind(models.TextChoices):
    STEP = "step", "Step"
    SLEEP = "sleep", "Sleep"
    EVENT = "event", "Wait for event"
    INPUT = "input", "Input request"
    APPROVAL = "approval", "Approval"
    EMIT = "emit", "Emitted event"
    VALUE = "value", "Recorded value"


class StepStatus(models.TextChoices):
    RUNNING = "running", "Running"
    RETRYING = "retrying", "Waiting to retry"
    WAITING = "waiting", "Waiting"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"


class Step(models.Model):
    # No index of its own: step_unique_per_run_sequence starts with it.
    run = models.ForeignKey(
        WorkflowRun, on_delete=models.CASCADE, related_name="steps", db_index=False
    )
    sequence = models.PositiveIntegerField()
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=16, choices=StepKind.choices, default=StepKind.STEP)
    status = models.CharField(max_length=16, choices=StepStatus.choices)
    result = models.JSONField(null=True, blank=True, encoder=DjangoJSONEncoder)
    error = models.TextField(blank=True)
    error_type = models.CharField(max_length=200, blank=True)
    traceback = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    max_attempts = models.PositiveIntegerField(default=1)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["run", "sequence"]
        constraints = [
            models.UniqueConstraint(fields=["run", "sequence"], name="step_unique_per_run_sequence")
        ]

    def __str__(self) -> str:
        return f"#{self.sequence} {self.name} ({self.status})"

    @property
    def duration(self):
        if self.started_at and self.finished_at:
            return self.finished_at - self.started_at
        return None


class WaitKind(models.TextChoices):
    EVENT = "event", "Event"
    SLEEP = "sleep", "Sleep"
    INPUT = "input", "Input"
    APPROVAL = "approval", "Approval"


class WaitStatus(models.TextChoices):
    OPEN = "open", "Open"
    RESOLVED = "resolved", "Resolved"
    TIMED_OUT = "timed_out", "Timed out"
    CANCELLED = "cancelled", "Cancelled"


class WaitPoint(models.Model):
    """What a suspended run waits for: an event, a timer, a person's input or an approval."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    run = models.ForeignKey(WorkflowRun, on_delete=models.CASCADE, related_name="waits")
    sequence = models.PositiveIntegerField()
    kind = models.CharField(max_length=16, choices=WaitKind.choices)
    key = models.CharField(max_length=200, help_text="The name given in the workflow code.")
    event_id = models.CharField(max_length=255, blank=True, db_index=True)
    # For input requests: prompt, JSON schema and metadata shown to the person answering.
    request = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    deadline = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=WaitStatus.choices, default=WaitStatus.OPEN)
    resolution = models.JSONField(null=True, blank=True, encoder=DjangoJSONEncoder)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["run", "sequence"]
        constraints = [
            models.UniqueConstraint(fields=["run", "sequence"], name="wait_unique_per_run_sequence")
        ]
        indexes = [
            models.Index(fields=["status", "deadline"], name="wait_due_idx"),
            models.Index(fields=["event_id", "status"], name="wait_event_idx"),
        ]

    def __str__(self) -> str:
        target = f" {self.event_id}" if self.event_id else ""
        return f"{self.get_kind_display()} '{self.key}'{target} ({self.status})"

    @property
    def is_open(self) -> bool:
        return self.status == WaitStatus.OPEN


class EventMessage(models.Model):
    """A notify() that found nobody waiting: kept until a wait for its event id appears."""

    event_id = models.CharField(max_length=255, db_index=True)
    data = models.JSONField(null=True, blank=True, encoder=DjangoJSONEncoder)
    created_at = models.DateTimeField(auto_now_add=True)
    consumed_at = models.DateTimeField(null=True, blank=True)
    consumed_by = models.ForeignKey(
        WaitPoint, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["event_id", "consumed_at"], name="eventmsg_pending_idx")]

    def __str__(self) -> str:
        return f"{self.event_id} ({'delivered' if self.consumed_at else 'stored'})"


class RunEvent(models.Model):
    """The transactional outbox: one row per state change, written in the same transaction."""

    # No index of its own: event_unique_run_seq starts with it.
    run = models.ForeignKey(
        WorkflowRun, on_delete=models.CASCADE, related_name="events", db_index=False
    )
    seq = models.PositiveIntegerField()
    type = models.CharField(max_length=100)
    data = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["run", "seq"]
        constraints = [models.UniqueConstraint(fields=["run", "seq"], name="event_unique_run_seq")]

    def __str__(self) -> str:
        return f"{self.run_id} #{self.seq} {self.type}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise ValidationError("Run events are append-only.")
        super().save(*args, **kwargs)


class IdempotentRequest(models.Model):
    """The first response to an API POST made with an ``Idempotency-Key`` header; a repeat of
    the same request with the same key gets this response again instead of acting twice."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64, help_text="SHA-256 of method, path and body.")
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    response = models.JSONField(null=True, blank=True, encoder=DjangoJSONEncoder)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "key"], name="idempotent_request_unique_key")
        ]

    def __str__(self) -> str:
        return f"{self.key} ({self.status_code or 'in progress'})"


class WebhookReceipt(models.Model):
    """A verified inbound webhook; its signature may not be accepted a second time (replay)."""

    signature = models.CharField(max_length=128, unique=True)
    action = models.CharField(max_length=100)
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)

    def __str__(self) -> str:
        return f"{self.action} at {self.received_at:%Y-%m-%d %H:%M:%S}"
