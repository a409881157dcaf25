import django_filters
from django.db.models import Q

from ..models import ApprovalRequest, ApprovalStatus
from ..selectors import overdue_q, waiting_for_q


class ApprovalFilter(django_filters.FilterSet):
    # distinct=False: see workflows.api.filters.RunFilter.status.
    status = django_filters.MultipleChoiceFilter(choices=ApprovalStatus.choices, distinct=False)
    workflow = django_filters.CharFilter(field_name="run__workflow_name")
    run = django_filters.UUIDFilter(field_name="run_id")
    assigned_to_me = django_filters.BooleanFilter(
        method="filter_assigned", label="Waiting for me (assigned, my groups or claimed by me)"
    )
    overdue = django_filters.BooleanFilter(
        method="filter_overdue", label="The open stage's deadline has passed"
    )

    class Meta:
        model = ApprovalRequest
        fields = ["status", "workflow", "run", "assigned_to_me", "overdue"]

    def filter_assigned(self, queryset, name, value):
        # The condition itself rather than "pk IN (the queue)": PostgreSQL can then walk the
        # list's own order and stop at the page instead of building the whole queue first.
        mine = waiting_for_q(self.request.user)
        return queryset.filter(mine) if value else queryset.exclude(mine)

    def filter_overdue(self, queryset, name, value):
        overdue = Q(status=ApprovalStatus.PENDING) & overdue_q()
        return queryset.filter(overdue) if value else queryset.exclude(overdue)
