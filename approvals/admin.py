"""The approval queue in the Django admin.

*Approval requests* opens on the requests waiting for the signed-in user ("Waiting for me");
"All I may see" lists every request they may read. A request's page shows its payload, stage
progress, decision history and the decision forms (approve, reject with a reason, edit with a
diff preview); bulk approve / reject go through a confirmation page that lists what will be
decided and what will be skipped. Every decision calls ``approvals.services.approval_decide``
(channel ``admin``): nothing here writes a status. Pages update live over ``/ws/approvals/``
and ``/ws/runs/<id>/`` (``approvals/live.js``).

Who sees what: staff users with ``approvals.view_approvalrequest`` or ``approvals.decide_any``
see the requests ``approvals_visible_to`` grants them; whether they may decide one is the
service's call, made on every action.
"""

from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.admin.views.main import PAGE_VAR
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.timesince import timesince

from hitlproject.pagination import KeysFirstPaginator
from hitlproject.parsing import whole_number
from workflows.admin import ValidSelectionMixin, badge, matches_nothing, when
from workflows.choices import cached_choices
from workflows.errors import WorkflowError
from workflows.selectors import workflow_names

from . import services
from .models import (
    ApprovalRequest,
    ApprovalStage,
    ApprovalStatus,
    Channel,
    DecisionRecord,
    Notification,
    StageStatus,
)
from .review import context, decisions
from .review import selectors as review_selectors
from .review.forms import BulkRejectForm
from .selectors import (
    QUEUE_ORDER,
    approval_progress,
    approval_queue_for,
    approvals_visible_to,
    is_overdue,
    may_decide_any,
    overdue_q,
    search_q,
)

STATUS_BADGES = {
    ApprovalStatus.PENDING: "waiting",
    ApprovalStatus.APPROVED: "completed",
    ApprovalStatus.REJECTED: "failed",
    ApprovalStatus.TIMED_OUT: "timed_out",
    ApprovalStatus.CANCELLED: "cancelled",
}


class ReadOnlyMixin:
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


# --- list filters -------------------------------------------------------------------------


def _lists_all(request: HttpRequest) -> bool:
    """The list shows "All I may see" rather than the queue (``QueueFilter``)."""
    return request.GET.get(QueueFilter.parameter_name) == QueueFilter.ALL


class QueueFilter(admin.SimpleListFilter):
    """Opens on "Waiting for me": there is no unfiltered default."""

    title = "queue"
    parameter_name = "queue"
    MINE, ALL = "mine", "all"

    def lookups(self, request, model_admin):
        return [(self.MINE, "Waiting for me"), (self.ALL, "All I may see")]

    def value(self):
        return self.ALL if super().value() == self.ALL else self.MINE

    def choices(self, changelist):
        for value, label in self.lookup_choices:
            yield {
                "selected": self.value() == value,
                "query_string": changelist.get_query_string({self.parameter_name: value}),
                "display": label,
            }

    def queryset(self, request, queryset):
        if self.value() == self.MINE:
            # The queue is a subset of what the user may see (only assignees and "decide any"
            # holders are in it), so it replaces the visibility query instead of being
            # intersected with it: one fewer pass over every pending request.
            return review_selectors.review_rows(approval_queue_for(request.user))
        return queryset


class StageFilter(admin.SimpleListFilter):
    title = "open stage"
    parameter_name = "stage"

    def lookups(self, request, model_admin):
        names = cached_choices(
            "open-stages",
            lambda: list(
                ApprovalStage.objects.filter(status=StageStatus.OPEN)
                .order_by("name")
                .values_list("name", flat=True)
                .distinct()
            ),
        )
        return [(name, name) for name in names]

    def queryset(self, request, queryset):
        if self.value():
            if matches_nothing(self.value()):
                return queryset.none()
            return queryset.filter(
                current_stage__name=self.value(), current_stage__status=StageStatus.OPEN
            )
        return queryset


class WorkflowFilter(admin.SimpleListFilter):
    title = "workflow"
    parameter_name = "workflow"

    def lookups(self, request, model_admin):
        return [(name, name) for name in cached_choices("workflows", workflow_names)]

    def queryset(self, request, queryset):
        if self.value():
            if matches_nothing(self.value()):
                return queryset.none()
            return queryset.filter(run__workflow_name=self.value())
        return queryset


class AssigneeFilter(admin.SimpleListFilter):
    title = "assignee"
    parameter_name = "assignee"

    def lookups(self, request, model_admin):
        return cached_choices("assignees", review_selectors.assignee_choices)

    def queryset(self, request, queryset):
        # Not a user id ("²", 30 digits): the filter is ignored.
        user_id = whole_number(self.value() or "")
        if user_id is not None:
            return review_selectors.assigned_to(queryset, user_id)
        return queryset


class OverdueFilter(admin.SimpleListFilter):
    title = "deadline"
    parameter_name = "overdue"

    def lookups(self, request, model_admin):
        return [("yes", "Overdue"), ("no", "Not overdue")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(overdue_q())
        if self.value() == "no":
            return queryset.filter(is_overdue=False)
        return queryset


# --- the queue ----------------------------------------------------------------------------


@admin.register(ApprovalRequest)
class ApprovalRequestAdmin(ValidSelectionMixin, ReadOnlyMixin, admin.ModelAdmin):
    list_display = (
        "title",
        "workflow",
        "progress",
        "assignees",
        "age",
        "deadline",
        "status_badge",
    )
    list_display_links = ("title",)
    list_filter = (
        QueueFilter,
        "status",
        StageFilter,
        WorkflowFilter,
        AssigneeFilter,
        OverdueFilter,
    )
    search_fields = ("title", "run__id", "requester_name", "requester__username")
    search_help_text = "Title, requester or part of the run id; every word must match."
    list_per_page = 50
    # The exact total of 100,000 rows costs a second count; the filtered count is enough.
    show_full_result_count = False
    actions = ("approve_selected", "reject_selected")
    change_list_template = "admin/approvals/approvalrequest/change_list.html"
    bulk_template = "admin/approvals/approvalrequest/bulk_confirmation.html"
    request_template = "admin/approvals/approvalrequest/request.html"

    # --- permissions ----------------------------------------------------------------------

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        user = request.user
        return bool(
            user.is_active
            and user.is_staff
            and (user.has_perm("approvals.view_approvalrequest") or may_decide_any(user))
        )

    def has_decide_permission(self, request: HttpRequest) -> bool:
        """Shows the bulk actions; the service decides per request whether they apply."""
        return self.has_view_permission(request)

    # --- queries --------------------------------------------------------------------------

    def get_queryset(self, request: HttpRequest) -> QuerySet[ApprovalRequest]:
        return self._rows(approvals_visible_to(request.user))

    def _rows(self, queryset: QuerySet[ApprovalRequest]) -> QuerySet[ApprovalRequest]:
        return review_selectors.review_rows(queryset).annotate(is_overdue=is_overdue())

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet, search_term: str
    ) -> tuple[QuerySet, bool]:
        # search_fields only shows the box and its help text; the condition is search_q's,
        # which PostgreSQL can answer from indexes (no join, so no duplicates either).
        if not search_term.strip():
            return queryset, False
        return queryset.filter(search_q(search_term)), False

    def get_paginator(self, request: HttpRequest, queryset: QuerySet, per_page: int, *args, **kw):
        # The keys on a page have passed the visibility filter and the list filters; their
        # rows are read by key alone rather than evaluating those filters again.
        # "Waiting for me" must weigh every pending request to sort it, so the total comes
        # with the page's keys (expected_page). "All I may see", newest first, is read from
        # the creation index and stops after one page; counting in that query would make it
        # read and sort every row (measured 4x slower at 100,000), so it counts separately.
        queue = not _lists_all(request)
        return KeysFirstPaginator(
            queryset,
            per_page,
            *args,
            rows=lambda keys: self._rows(ApprovalRequest.objects.filter(pk__in=keys)),
            expected_page=request.GET.get(PAGE_VAR, 1) if queue else None,
            **kw,
        )

    def get_ordering(self, request: HttpRequest) -> list:
        if _lists_all(request):
            return ["-created_at"]
        # Waiting for me: the most urgent first, as approval_queue_for orders it.
        return list(QUEUE_ORDER)

    # --- columns --------------------------------------------------------------------------

    @admin.display(description="workflow", ordering="run__workflow_name")
    def workflow(self, obj: ApprovalRequest) -> str:
        return obj.run.workflow_name

    @admin.display(description="stage progress")
    def progress(self, obj: ApprovalRequest) -> str:
        return approval_progress(obj)

    @admin.display(description="assignees")
    def assignees(self, obj: ApprovalRequest) -> str:
        stage = obj.current_stage
        if stage is None or not obj.is_open:
            return "-"
        names = [u.get_username() for u in stage.users.all()]
        names += [f"group {g.name}" for g in stage.groups.all()]
        claimed = f" (claimed by {stage.claimed_by})" if stage.claimed_by_id else ""
        return (", ".join(names) or "-") + claimed

    @admin.display(description="age", ordering="created_at")
    def age(self, obj: ApprovalRequest) -> str:
        return format_html(
            '<span title="{}">{}</span>', obj.created_at.isoformat(), timesince(obj.created_at)
        )

    @admin.display(description="deadline", ordering="due_at")
    def deadline(self, obj: ApprovalRequest) -> str:
        stage = obj.current_stage
        if stage is None or not obj.is_open or stage.deadline is None:
            return "-"
        if obj.is_overdue:
            return format_html(
                '<strong class="hitl-overdue" style="color:var(--error-fg)">overdue</strong> {}',
                when(stage.deadline),
            )
        return when(stage.deadline)

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj: ApprovalRequest) -> str:
        return badge(STATUS_BADGES.get(obj.status, ""), obj.get_status_display())

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None):
        extra_context = {
            "title": "Approval queue",
            **(extra_context or {}),
            "live_since": review_selectors.last_event_id(),
        }
        return super().changelist_view(request, extra_context)

    # --- a request's page: the decision forms ---------------------------------------------

    def get_urls(self) -> list:
        info = self.opts.app_label, self.opts.model_name
        custom = [
            path(
                "<path:object_id>/decide/",
                self.admin_site.admin_view(self.decide_view),
                name="%s_%s_decide" % info,  # noqa: UP031  (the admin's own naming pattern)
            )
        ]
        return custom + super().get_urls()

    def _visible_object(self, request: HttpRequest, object_id: str) -> ApprovalRequest | None:
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            pk = ApprovalRequest._meta.pk.to_python(unquote(object_id))
        except ValidationError:
            return None
        return self.get_queryset(request).filter(pk=pk).first()

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict | None = None,
    ) -> HttpResponse:
        approval = self._visible_object(request, object_id)
        if approval is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        return self._request_page(request, approval, decisions.Outcome())

    def decide_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        approval = self._visible_object(request, object_id)
        if approval is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if request.method != "POST":
            return HttpResponseRedirect(self._change_url(approval))
        outcome = decisions.decide_from_post(request, approval, channel=Channel.ADMIN)
        if outcome.record is not None:
            self.message_user(request, outcome.message, messages.SUCCESS)
            return HttpResponseRedirect(self._change_url(approval))
        return self._request_page(request, approval, outcome)

    def _request_page(self, request, approval, outcome) -> TemplateResponse:
        page = context.approval_context(request, approval, outcome)
        page.update(
            self.admin_site.each_context(request),
            opts=self.opts,
            original=page["approval"],
            title=page["approval"].title,
            subtitle=None,
            has_view_permission=True,
            decide_url=reverse(
                f"admin:{self.opts.app_label}_{self.opts.model_name}_decide",
                args=[approval.pk],
            ),
            run_admin_url=reverse("admin:workflows_workflowrun_change", args=[approval.run_id]),
        )
        return TemplateResponse(request, self.request_template, page, status=outcome.status)

    def _change_url(self, approval: ApprovalRequest) -> str:
        return reverse(
            f"admin:{self.opts.app_label}_{self.opts.model_name}_change", args=[approval.pk]
        )

    # --- bulk approve / reject ------------------------------------------------------------

    @admin.action(description="Approve selected requests", permissions=["decide"])
    def approve_selected(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        return self._bulk(request, queryset, "approve")

    @admin.action(description="Reject selected requests", permissions=["decide"])
    def reject_selected(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        return self._bulk(request, queryset, "reject")

    def _bulk(self, request: HttpRequest, queryset: QuerySet, action: str) -> HttpResponse | None:
        approvals = list(queryset.order_by("created_at"))
        skipped = review_selectors.decidable(request.user, approvals, action)
        chosen = [a for a in approvals if a.pk not in skipped]
        form = BulkRejectForm(request.POST) if action == "reject" else None
        confirmed = request.POST.get("post") == "yes"
        stages = self._posted_stages(request, chosen) if confirmed else {}
        if confirmed and stages is not None and (form is None or form.is_valid()):
            reason = form.cleaned_data["reason"] if form is not None else ""
            self._apply(request, chosen, skipped, approvals, action, reason, stages)
            return None  # back to the list
        page = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"{action.capitalize()} {len(approvals)} request(s)?",
            "action": action,
            "action_name": f"{action}_selected",
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
            "approvals": approvals,
            "chosen": [(a, approval_progress(a)) for a in chosen],
            "skipped": [(a, skipped[a.pk]) for a in approvals if a.pk in skipped],
            "form": form if form is not None and confirmed else BulkRejectForm(),
        }
        return TemplateResponse(request, self.bulk_template, page)

    def _posted_stages(
        self, request: HttpRequest, chosen: list[ApprovalRequest]
    ) -> dict[Any, int | None] | None:
        """The stage the confirmation page showed for each request (``stage-<pk>``; empty:
        none). None if one is not a stage id: checked for all before anything is decided,
        so a bad field never leaves half of the selection decided."""
        stages: dict[Any, int | None] = {}
        bad = []
        for approval in chosen:
            posted = request.POST.get(f"stage-{approval.pk}") or ""
            stages[approval.pk] = whole_number(posted) if posted else None
            if posted and stages[approval.pk] is None:
                bad.append(approval.title)
        if not bad:
            return stages
        self.message_user(
            request,
            f"Nothing was decided: the stage sent for {', '.join(bad)} is not a stage id. "
            "Check the list below and confirm again.",
            messages.ERROR,
        )
        return None

    def _apply(self, request, chosen, skipped, approvals, action, reason, stages) -> None:
        """Call the service for each request; report what was decided, skipped and refused."""
        done = []
        for approval in chosen:
            try:
                services.approval_decide(
                    request=approval,
                    actor=request.user,
                    action=action,
                    comment=reason,
                    stage=stages[approval.pk],
                    channel=Channel.ADMIN,
                )
            except WorkflowError as exc:
                self.message_user(request, f"Not decided: {approval.title}: {exc}", messages.ERROR)
            else:
                done.append(approval)
        verb = "Approved" if action == "approve" else "Rejected"
        if done:
            titles = format_html_join(", ", "{}", ((a.title,) for a in done))
            self.message_user(
                request, format_html("{} {}: {}.", verb, len(done), titles), messages.SUCCESS
            )
        for approval in approvals:
            if approval.pk in skipped:
                self.message_user(
                    request, f"Skipped {approval.title}: {skipped[approval.pk]}.", messages.WARNING
                )


# --- the audit and notifications, read-only ------------------------------------------------


@admin.register(DecisionRecord)
class DecisionRecordAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ["created_at", "request", "stage", "actor_name", "action", "channel"]
    list_filter = ["action", "channel"]
    search_fields = ["actor_name", "comment", "request__title"]
    list_select_related = ["request", "stage"]


@admin.register(Notification)
class NotificationAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = [
        "created_at",
        "hook",
        "channel",
        "recipient",
        "status",
        "attempts",
        "last_error",
    ]
    list_filter = ["status", "hook", "channel"]
    list_select_related = ["recipient"]
