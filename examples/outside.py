"""Stand-ins for the outside systems the seeds talk to (payment provider, mail server, file
store, CMS). Each call records an ``Effect``; a provider listed in the setting
``HITL_EXAMPLES_OUTAGES`` (e.g. ``{"payments"}``) fails instead, as a real one does during an
outage, so the examples can show retries and ``workflows.retry``.
"""

from typing import Any

from django.conf import settings
from django.db.models import F

from .models import Effect


class ProviderUnavailable(Exception):
    """The outside system is down (see ``HITL_EXAMPLES_OUTAGES``)."""


def check_available(provider: str) -> None:
    if provider in getattr(settings, "HITL_EXAMPLES_OUTAGES", ()):
        raise ProviderUnavailable(f"The {provider} provider is unavailable; try again later.")


def apply_effect(
    *,
    run_id: str | None,
    kind: str,
    target: str,
    data: dict[str, Any] | None = None,
    key: str | None = None,
) -> dict[str, Any]:
    """Apply an effect once per ``key`` (like an outside API honouring an idempotency key)."""
    if key is None:
        effect = Effect.objects.create(run_id=run_id, kind=kind, target=target, data=data or {})
    else:
        effect, created = Effect.objects.get_or_create(
            key=key,
            defaults={"run_id": run_id, "kind": kind, "target": target, "data": data or {}},
        )
        if not created:
            Effect.objects.filter(pk=effect.pk).update(requests=F("requests") + 1)
    return {"effect_id": effect.pk, "kind": kind, "target": target, **(data or {})}
