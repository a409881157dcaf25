from datetime import UTC, datetime
from typing import Any

import django_filters
from django import forms
from django.db.models import Exists, OuterRef
from django_filters.fields import IsoDateTimeField

from ..models import RunStatus, WaitKind, WaitPoint, WaitStatus, WorkflowRun


class UTCDateTimeField(IsoDateTimeField):
    """ISO 8601 with any offset Python accepts, converted to UTC (PostgreSQL refuses offsets
    beyond +-15:59, which ISO 8601 and Python allow)."""

    def to_python(self, value: Any) -> datetime | None:
        parsed = super().to_python(value)
        if parsed is None:
            return None
        try:
            return parsed.astimezone(UTC)
        except OverflowError:
            # 9999-12-31T23:59:59-10:00 is after the last datetime Python (and the database)
            # can hold once in UTC; so is the mirror case before 0001-01-01.
            raise forms.ValidationError(
                "Outside the dates that can be stored: 0001-01-01 to 9999-12-31 in UTC.",
                code="invalid",
            ) from None


class UTCDateTimeFilter(django_filters.IsoDateTimeFilter):
    """Validated as a form field, so a date out of range is a 400 naming the parameter."""

    field_class = UTCDateTimeField


class RunFilter(django_filters.FilterSet):
    # distinct=False: a run's own column cannot repeat rows, and django-filter's default
    # DISTINCT made PostgreSQL sort every matching run before returning a page of 50.
    status = django_filters.MultipleChoiceFilter(choices=RunStatus.choices, distinct=False)
    workflow = django_filters.CharFilter(field_name="workflow_name")
    waiting_kind = django_filters.ChoiceFilter(
        choices=WaitKind.choices,
        method="filter_waiting_kind",
        label="Runs with an open wait of this kind",
    )
    created_after = UTCDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = UTCDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = WorkflowRun
        fields = ["status", "workflow", "waiting_kind", "created_after", "created_before"]

    def filter_waiting_kind(self, queryset, name, value):
        # EXISTS rather than a join + DISTINCT, for the same reason as ``status``.
        open_wait = WaitPoint.objects.filter(run=OuterRef("pk"), kind=value, status=WaitStatus.OPEN)
        return queryset.filter(Exists(open_wait))


class InputRequestFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=WaitStatus.choices)
    run = django_filters.UUIDFilter(field_name="run_id")
    workflow = django_filters.CharFilter(field_name="run__workflow_name")
