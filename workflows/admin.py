"""Admin for workflow runs: read-only views of runs, steps, waits and events, plus cancel and
retry through ``workflows.services``.

Runs are never edited by hand: every model here refuses add, change and delete (for superusers
too; a run and its steps, waits and events are its audit history). Cancel and retry need the
``workflows.manage_any_run`` permission.

The view permission opens the pages; which runs they list is ``runs_visible_to``'s answer, as
for the API, the review page and the WebSockets.
"""

import json
from collections.abc import Callable, Iterable
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.dateformat import format as date_format
from django.utils.formats import localize
from django.utils.html import format_html
from django.utils.timesince import timesince, timeuntil
from django.utils.timezone import localtime

from . import clock, selectors, services
from .choices import cached_choices
from .errors import WorkflowError
from .models import (
    EventMessage,
    RunEvent,
    RunStatus,
    Step,
    StepStatus,
    WaitPoint,
    WaitStatus,
    WorkflowRun,
)
from .permissions import runs_visible_to, sees_all_runs

MANAGE_PERMISSION = "workflows.manage_any_run"

STATUS_COLOURS = {
    # Background colours chosen to read on both the light and the dark admin theme.
    RunStatus.PENDING: "#6c757d",
    RunStatus.RUNNING: "#0d6efd",
    RunStatus.WAITING: "#b8860b",
    RunStatus.COMPLETED: "#198754",
    RunStatus.FAILED: "#dc3545",
    RunStatus.CANCELLED: "#495057",
    StepStatus.RETRYING: "#fd7e14",
    WaitStatus.OPEN: "#b8860b",
    WaitStatus.RESOLVED: "#198754",
    WaitStatus.TIMED_OUT: "#fd7e14",
}


def can_manage_runs(user: Any) -> bool:
    """Cancel and retry any run: the ``manage_any_run`` permission (superusers have all)."""
    return bool(user.is_active and user.is_staff and user.has_perm(MANAGE_PERMISSION))


def can_view_runs(user: Any) -> bool:
    return bool(
        user.is_active
        and user.is_staff
        and (user.has_perm("workflows.view_workflowrun") or user.has_perm(MANAGE_PERMISSION))
    )


def badge(value: str, label: str | None = None) -> str:
    colour = STATUS_COLOURS.get(value, "#6c757d")
    return format_html(
        '<span class="hitl-badge" style="background:{};color:#fff;padding:2px 8px;'
        'border-radius:10px;font-size:11px;font-weight:600;white-space:nowrap">{}</span>',
        colour,
        label or value,
    )


def json_block(value: Any) -> str:
    if value is None:
        return "-"
    text = json.dumps(value, cls=DjangoJSONEncoder, indent=2, ensure_ascii=False, sort_keys=True)
    return format_html('<pre class="hitl-json">{}</pre>', text)


def traceback_block(error_type: str, error: str, traceback: str) -> str:
    if not (error or traceback):
        return "-"
    headline = f"{error_type}: {error}" if error_type else error
    if not traceback:
        return format_html('<strong class="hitl-error">{}</strong>', headline)
    return format_html(
        '<strong class="hitl-error">{}</strong>'
        '<pre class="hitl-traceback" style="white-space:pre-wrap;max-height:30em;overflow:auto">'
        "{}</pre>",
        headline,
        traceback,
    )


def when(value: Any) -> str:
    """A time to the second and how far it is from now: ``2025-01-31 14:05:09 UTC (in 2 hours)``."""
    if value is None:
        return "-"
    now = clock.now()
    relative = f"in {timeuntil(value, now)}" if value > now else f"{timesince(value, now)} ago"
    return format_html(
        '<span title="{}">{}</span> <span class="quiet">({})</span>',
        value.isoformat(),
        date_format(localtime(value), "Y-m-d H:i:s T"),
        relative,
    )


def matches_nothing(value: str) -> bool:
    """A filter value no stored text can equal: PostgreSQL text cannot hold NUL, and psycopg
    refuses to send one (a 500), so such a filter selects nothing instead."""
    return "\x00" in value


class ValidSelectionMixin:
    """Actions on a model with a UUID key: a selected id that is not a UUID (a hand-made
    POST) would make the action's ``pk__in`` filter raise ValidationError, a 500. Such a
    selection changes nothing and says so."""

    def response_action(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        if not request.POST.get("select_across"):
            try:
                for value in request.POST.getlist(admin.helpers.ACTION_CHECKBOX_NAME):
                    self.model._meta.pk.to_python(value)
            except ValidationError:
                self.message_user(
                    request,
                    "Nothing was changed: the selection holds an id that is not one of this list.",
                    messages.ERROR,
                )
                return None  # the change list redirects back to itself
        return super().response_action(request, queryset)


class ReadOnlyAdminMixin:
    """No adding, no changing, no deleting: rows change only through the engine's services."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class RunChildInline(ReadOnlyAdminMixin, admin.TabularInline):
    """Rows of a run: visible to whoever may view the run, never editable."""

    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = False

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return can_view_runs(request.user)


class StepInline(RunChildInline):
    model = Step
    verbose_name_plural = "Steps"
    fields = readonly_fields = (
        "sequence",
        "name",
        "kind",
        "status_badge",
        "attempts_display",
        "duration_display",
        "result_preview",
        "error_display",
    )
    ordering = ("sequence",)

    @admin.display(description="status")
    def status_badge(self, step: Step) -> str:
        return badge(step.status, step.get_status_display())

    @admin.display(description="attempts")
    def attempts_display(self, step: Step) -> str:
        text = f"{step.attempts} / {step.max_attempts}"
        if step.next_attempt_at:
            text += f", next {localize(localtime(step.next_attempt_at))}"
        return text

    @admin.display(description="duration")
    def duration_display(self, step: Step) -> str:
        return selectors.format_duration(step.duration) if step.duration is not None else "-"

    @admin.display(description="result")
    def result_preview(self, step: Step) -> str:
        if step.result is None:
            return "-"
        return format_html("<code>{}</code>", selectors.preview(step.result))

    @admin.display(description="error")
    def error_display(self, step: Step) -> str:
        if not step.error:
            return "-"
        headline = f"{step.error_type}: {step.error}" if step.error_type else step.error
        if not step.traceback:
            return headline
        return format_html(
            '<details><summary>{}</summary><pre class="hitl-traceback" '
            'style="white-space:pre-wrap">{}</pre></details>',
            headline,
            step.traceback,
        )


class WaitInline(RunChildInline):
    model = WaitPoint
    verbose_name_plural = "Waits"
    fields = readonly_fields = (
        "sequence",
        "kind",
        "key",
        "event_id",
        "status_badge",
        "deadline_display",
        "resolution_preview",
        "resolved_at",
        "resolved_by",
    )
    ordering = ("sequence",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[WaitPoint]:
        return super().get_queryset(request).select_related("resolved_by")

    @admin.display(description="status")
    def status_badge(self, wait: WaitPoint) -> str:
        return badge(wait.status, wait.get_status_display())

    @admin.display(description="deadline")
    def deadline_display(self, wait: WaitPoint) -> str:
        return when(wait.deadline)

    @admin.display(description="resolution")
    def resolution_preview(self, wait: WaitPoint) -> str:
        if wait.resolution is None:
            return "-"
        return format_html("<code>{}</code>", selectors.preview(wait.resolution))


class WorkflowNameFilter(admin.SimpleListFilter):
    title = "workflow"
    parameter_name = "workflow_name"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(name, name) for name in cached_choices("workflows", selectors.workflow_names)]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value():
            if matches_nothing(self.value()):
                return queryset.none()
            return queryset.filter(workflow_name=self.value())
        return queryset


@admin.register(WorkflowRun)
class WorkflowRunAdmin(ValidSelectionMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "short_id",
        "workflow",
        "status_badge",
        "waiting_for",
        "until",
        "created",
        "updated",
    )
    list_filter = ("status", WorkflowNameFilter)
    # "id" is matched with icontains, so the short id shown in the list finds the run.
    search_fields = ("id", "workflow_name", "idempotency_key")
    search_help_text = "Run id (or its beginning), workflow name or idempotency key."
    ordering = ("-created_at",)
    list_per_page = 50
    show_full_result_count = False
    inlines = (StepInline, WaitInline)
    actions = ("cancel_runs", "retry_runs")
    change_form_template = "admin/workflows/workflowrun/change_form.html"
    action_confirmation_template = "admin/workflows/workflowrun/action_confirmation.html"

    fieldsets = (
        (
            None,
            {
                "fields": (
                    "id",
                    "workflow",
                    "status_badge",
                    "waiting_for",
                    "until",
                    "idempotency_key",
                    "created_by",
                )
            },
        ),
        ("Input and result", {"fields": ("input_display", "result_display")}),
        ("Error", {"fields": ("error_display",)}),
        (
            "Times",
            {"fields": ("created", "started", "updated", "finished", "wake")},
        ),
        (
            "Execution",
            {
                "classes": ("collapse",),
                "fields": (
                    "lease_owner",
                    "lease_expires_at",
                    "enqueued_at",
                    "advance_count",
                    "recovery_count",
                    "event_seq",
                ),
            },
        ),
    )
    readonly_fields = (
        "id",
        "workflow",
        "status_badge",
        "waiting_for",
        "until",
        "idempotency_key",
        "created_by",
        "input_display",
        "result_display",
        "error_display",
        "created",
        "started",
        "updated",
        "finished",
        "wake",
        "lease_owner",
        "lease_expires_at",
        "enqueued_at",
        "advance_count",
        "recovery_count",
        "event_seq",
    )

    # --- permissions ----------------------------------------------------------------------

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return can_view_runs(request.user)

    def has_manage_permission(self, request: HttpRequest) -> bool:
        """Used by the actions' ``permissions=["manage"]``."""
        return can_manage_runs(request.user)

    # --- queries --------------------------------------------------------------------------

    def get_queryset(self, request: HttpRequest) -> QuerySet[WorkflowRun]:
        # The list, the change page, the buttons and the actions all read from here: only the
        # runs the user may see (all for run managers), as every other reader.
        visible = super().get_queryset(request) & runs_visible_to(request.user)
        return selectors.runs_with_waits(queryset=visible).select_related("created_by")

    # --- columns and fields ---------------------------------------------------------------

    @admin.display(description="run", ordering="id")
    def short_id(self, run: WorkflowRun) -> str:
        return format_html('<span title="{}">{}</span>', run.id, str(run.id)[:8])

    @admin.display(description="workflow", ordering="workflow_name")
    def workflow(self, run: WorkflowRun) -> str:
        return f"{run.workflow_name} v{run.workflow_version}"

    @admin.display(description="status", ordering="status")
    def status_badge(self, run: WorkflowRun) -> str:
        return badge(run.status, run.get_status_display())

    @admin.display(description="waiting for", ordering="wait_kind")
    def waiting_for(self, run: WorkflowRun) -> str:
        return selectors.run_waiting_for(run)[0] or "-"

    @admin.display(description="until", ordering="wait_deadline")
    def until(self, run: WorkflowRun) -> str:
        return when(selectors.run_waiting_for(run)[1])

    @admin.display(description="created", ordering="created_at")
    def created(self, run: WorkflowRun) -> str:
        return when(run.created_at)

    @admin.display(description="updated", ordering="updated_at")
    def updated(self, run: WorkflowRun) -> str:
        return when(run.updated_at)

    @admin.display(description="started")
    def started(self, run: WorkflowRun) -> str:
        return when(run.started_at)

    @admin.display(description="finished")
    def finished(self, run: WorkflowRun) -> str:
        return when(run.finished_at)

    @admin.display(description="wakes at", ordering="wake_at")
    def wake(self, run: WorkflowRun) -> str:
        return when(run.wake_at)

    @admin.display(description="input")
    def input_display(self, run: WorkflowRun) -> str:
        return json_block(run.input)

    @admin.display(description="result")
    def result_display(self, run: WorkflowRun) -> str:
        return json_block(run.result)

    @admin.display(description="error")
    def error_display(self, run: WorkflowRun) -> str:
        return traceback_block(run.error_type, run.error, run.traceback)

    # --- change page: timeline and buttons ------------------------------------------------

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict | None = None,
    ) -> HttpResponse:
        run = self.get_object(request, unquote(object_id))
        extra_context = dict(extra_context or {})
        if run is not None and self.has_view_permission(request, run):
            manage = self.has_manage_permission(request)
            extra_context.update(
                timeline=selectors.run_timeline(run),
                can_cancel=manage and not run.is_terminal,
                can_retry=manage and run.status == RunStatus.FAILED,
            )
        return super().change_view(request, object_id, form_url, extra_context)

    def get_urls(self) -> list:
        info = self.opts.app_label, self.opts.model_name
        wrap = self.admin_site.admin_view
        custom = [
            path(
                "<path:object_id>/cancel/",
                wrap(self.cancel_view),
                name="%s_%s_cancel" % info,  # noqa: UP031  (the admin's own naming pattern)
            ),
            path(
                "<path:object_id>/retry/",
                wrap(self.retry_view),
                name="%s_%s_retry" % info,  # noqa: UP031
            ),
        ]
        # Before the defaults: their "<path:object_id>/" catch-all would swallow these.
        return custom + super().get_urls()

    def cancel_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        return self._single_run_action(request, object_id, "cancel")

    def retry_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        return self._single_run_action(request, object_id, "retry")

    def _single_run_action(self, request: HttpRequest, object_id: str, verb: str) -> HttpResponse:
        if not self.has_manage_permission(request):
            raise PermissionDenied
        run = get_object_or_404(self.get_queryset(request), pk=_uuid_or_404(object_id))
        change_url = reverse("admin:workflows_workflowrun_change", args=[run.pk])
        if request.method == "POST":
            self._apply(request, [run], verb)
            return HttpResponseRedirect(change_url)
        return self._confirmation(request, [run], verb, single=True, back_url=change_url)

    # --- actions --------------------------------------------------------------------------

    @admin.action(description="Cancel selected runs", permissions=["manage"])
    def cancel_runs(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        return self._bulk(request, queryset, "cancel")

    @admin.action(description="Retry selected failed runs", permissions=["manage"])
    def retry_runs(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        return self._bulk(request, queryset, "retry")

    def _bulk(self, request: HttpRequest, queryset: QuerySet, verb: str) -> HttpResponse | None:
        runs = list(queryset.order_by("created_at"))
        if request.POST.get("post") == "yes":
            self._apply(request, runs, verb)
            return None  # back to the change list
        return self._confirmation(request, runs, verb, single=False)

    def _confirmation(
        self,
        request: HttpRequest,
        runs: list[WorkflowRun],
        verb: str,
        *,
        single: bool,
        back_url: str = "",
    ) -> TemplateResponse:
        possible = _can_cancel if verb == "cancel" else _can_retry
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"{verb.capitalize()} {'this run' if single else 'runs'}?",
            "verb": verb,
            "single": single,
            "runs": runs,
            "affected": [run for run in runs if possible(run)],
            "refused": [run for run in runs if not possible(run)],
            "action_name": f"{verb}_runs",
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
            "back_url": back_url,
            "original": runs[0] if single else None,
        }
        return TemplateResponse(request, self.action_confirmation_template, context)

    def _apply(self, request: HttpRequest, runs: Iterable[WorkflowRun], verb: str) -> None:
        """Call the service for every run; report successes together and each refusal."""
        call: Callable[[WorkflowRun], Any]
        if verb == "cancel":
            reason = f"Cancelled in the admin by {request.user.get_username()}."
            extra = (request.POST.get("reason") or "").strip()[:500]
            if extra:
                reason = f"{reason} {extra}"

            def call(run: WorkflowRun) -> Any:
                return services.run_cancel(run_id=run.pk, reason=reason, cancelled_by=request.user)

            done_label = "Cancelled"
        else:

            def call(run: WorkflowRun) -> Any:
                return services.run_retry(run_id=run.pk, retried_by=request.user)

            done_label = "Retrying"

        done = []
        for run in runs:
            try:
                call(run)
            except WorkflowError as exc:
                self.message_user(request, f"Run {run.pk} not changed: {exc}", messages.WARNING)
            else:
                done.append(run)
        if done:
            ids = ", ".join(f"{run.pk} ({run.workflow_name})" for run in done)
            noun = "run" if len(done) == 1 else "runs"
            self.message_user(request, f"{done_label} {len(done)} {noun}: {ids}.", messages.SUCCESS)


def _can_cancel(run: WorkflowRun) -> bool:
    return not run.is_terminal


def _can_retry(run: WorkflowRun) -> bool:
    return run.status == RunStatus.FAILED


def _uuid_or_404(value: str) -> Any:
    try:
        return WorkflowRun._meta.pk.to_python(unquote(value))
    except ValidationError:
        raise Http404("No such run.") from None


# --- the run's parts, read-only -------------------------------------------------------------


class RunLinkMixin:
    def get_queryset(self, request: HttpRequest) -> QuerySet:
        # A run's waits and events are read like the run itself (runs_visible_to).
        queryset = super().get_queryset(request)
        if sees_all_runs(request.user):
            return queryset
        return queryset.filter(run__in=runs_visible_to(request.user))

    @admin.display(description="run", ordering="run__created_at")
    def run_link(self, obj: Any) -> str:
        url = reverse("admin:workflows_workflowrun_change", args=[obj.run_id])
        return format_html(
            '<a href="{}">{} {}</a>', url, obj.run.workflow_name, str(obj.run_id)[:8]
        )


@admin.register(WaitPoint)
class WaitPointAdmin(RunLinkMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("key", "kind", "event_id", "status_badge", "deadline", "run_link", "created_at")
    list_filter = ("status", "kind")
    search_fields = ("=event_id", "key", "run__id")
    list_select_related = ("run",)
    ordering = ("-created_at",)

    @admin.display(description="status", ordering="status")
    def status_badge(self, wait: WaitPoint) -> str:
        return badge(wait.status, wait.get_status_display())


class DeliveredFilter(admin.SimpleListFilter):
    title = "delivery"
    parameter_name = "delivered"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("no", "Stored, waiting for a wait"), ("yes", "Delivered")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() in ("yes", "no"):
            return queryset.filter(consumed_at__isnull=self.value() == "no")
        return queryset


@admin.register(EventMessage)
class EventMessageAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("event_id", "delivered", "data_preview", "created_at", "consumed_at")
    list_filter = (DeliveredFilter,)
    search_fields = ("=event_id",)
    ordering = ("-created_at",)

    @admin.display(boolean=True)
    def delivered(self, message: EventMessage) -> bool:
        return message.consumed_at is not None

    @admin.display(description="data")
    def data_preview(self, message: EventMessage) -> str:
        return selectors.preview(message.data)


@admin.register(RunEvent)
class RunEventAdmin(RunLinkMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("type", "seq", "run_link", "data_preview", "created_at")
    list_filter = ("type",)
    search_fields = ("run__id", "type")
    list_select_related = ("run",)
    ordering = ("-created_at", "-seq")

    @admin.display(description="data")
    def data_preview(self, event: RunEvent) -> str:
        return selectors.preview(event.data)
