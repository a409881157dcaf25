"""What the examples did to the outside world.

The seeds call a payment provider, a mail server, a file store and a CMS. The examples record
those effects here instead, so a reader (admin, tests) can see what really happened and how
often: an effect made with a step's idempotency key is applied once, however many times the
step's code ran (a worker killed after the effect and before the step was recorded re-runs it).
"""

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models


class Effect(models.Model):
    # Null for calls that do not know their run (a gated function gets only its arguments).
    run = models.ForeignKey(
        "workflows.WorkflowRun",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="example_effects",
    )
    kind = models.CharField(max_length=50, help_text="refund, payment, email, delete, publish...")
    target = models.CharField(max_length=500, help_text="Who or what the effect is applied to.")
    data = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    # The step's idempotency key (unique: the outside system dedupes on it); null when the call
    # carries no key of its own.
    key = models.CharField(max_length=255, unique=True, null=True, blank=True)
    # How many times the code asked for this effect (> 1 only after a crash mid-step).
    requests = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.kind} -> {self.target}"
