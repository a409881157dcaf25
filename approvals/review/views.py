"""The review page (``/review/``): a reviewer's live queue, a request with its decision forms,
and a run's live timeline with its input forms.

Views are thin: reads through selectors, every write through ``approval_decide``,
``input_answer`` or ``event_notify``. Decisions are ordinary form POSTs (CSRF, redirect after
success), so the page works without JavaScript; ``approvals/live.js`` only refreshes the
server-rendered regions when the WebSocket reports a change.
"""

from typing import Any

from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse_lazy
from django.views.decorators.http import require_GET, require_POST

from hitlproject.pagination import KeysFirstPaginator
from hitlproject.parsing import whole_number
from workflows.errors import InvalidInput, WaitClosed, WaitNotFound
from workflows.models import WaitKind, WorkflowRun
from workflows.permissions import can_answer_input
from workflows.services import event_notify, input_answer

from ..models import ApprovalRequest, Channel
from ..selectors import QUEUE_SCOPES, approval_progress
from . import context, decisions, forms
from . import selectors as s

LOGIN_URL = reverse_lazy("review:login")
PAGE_SIZE = 25

SCOPE_LABELS = {
    "all": "All my work",
    "assigned": "Assigned to me",
    "groups": "My groups",
    "claimed": "Claimed by me",
    "overdue": "Overdue",
}


def reviewer_required(view):
    return login_required(view, login_url=LOGIN_URL)


class LoginView(auth_views.LoginView):
    """Reviewers need not be staff, so they do not sign in through the admin's login."""

    template_name = "approvals/review/login.html"
    redirect_authenticated_user = True


# --- the queue ----------------------------------------------------------------------------


@require_GET
@reviewer_required
def queue(request: HttpRequest) -> HttpResponse:
    scope = request.GET.get("scope", "all")
    if scope not in QUEUE_SCOPES:
        scope = "all"
    live_since = s.last_event_id()  # before the reads: a change after them is replayed
    paginator = KeysFirstPaginator(
        s.review_queue(request.user, scope),
        PAGE_SIZE,
        rows=lambda keys: s.review_queue_rows(request.user, keys),
        expected_page=request.GET.get("page") or 1,
    )
    page = paginator.get_page(request.GET.get("page"))
    page_context = {
        "scope": scope,
        "scopes": [(key, SCOPE_LABELS[key]) for key in QUEUE_SCOPES],
        "page": page,
        "rows": [(approval, approval_progress(approval)) for approval in page],
        "inputs": list(s.open_inputs_for(request.user)[:50]),
        "live_since": live_since,
    }
    return render(request, "approvals/review/queue.html", page_context)


# --- one approval request -----------------------------------------------------------------


def _approval_or_404(request: HttpRequest, pk: Any) -> ApprovalRequest:
    approval = s.approval_for(request.user, pk)
    if approval is None:
        raise Http404("No such approval request.")
    return approval


@require_GET
@reviewer_required
def approval_detail(request: HttpRequest, pk: Any) -> HttpResponse:
    return _approval_page(request, _approval_or_404(request, pk))


@require_POST
@reviewer_required
def approval_decide(request: HttpRequest, pk: Any) -> HttpResponse:
    approval = _approval_or_404(request, pk)
    outcome = decisions.decide_from_post(request, approval, channel=Channel.REVIEW)
    if outcome.record is not None:
        messages.success(request, outcome.message)
        return redirect("review:approval", pk=approval.pk)
    return _approval_page(request, approval, outcome)


def _approval_page(
    request: HttpRequest, approval: ApprovalRequest, outcome: Any = None
) -> HttpResponse:
    outcome = outcome or decisions.Outcome()
    page_context = context.approval_context(request, approval, outcome)
    return render(request, "approvals/review/approval.html", page_context, status=outcome.status)


# --- a run: live timeline, input requests, prompts ----------------------------------------


def _run_or_404(request: HttpRequest, pk: Any) -> WorkflowRun:
    run = s.run_for(request.user, pk)
    if run is None:
        raise Http404("No such run.")
    return run


@require_GET
@reviewer_required
def run_detail(request: HttpRequest, pk: Any) -> HttpResponse:
    return _run_page(request, _run_or_404(request, pk))


@require_POST
@reviewer_required
def input_answer_view(request: HttpRequest, pk: Any, wait_id: Any) -> HttpResponse:
    run = _run_or_404(request, pk)
    wait = run.waits.filter(pk=wait_id, kind=WaitKind.INPUT).first()
    if wait is None:
        raise Http404("No such input request.")
    if not can_answer_input(request.user, run):
        return _run_page(request, run, error="You may not answer this input request.", status=403)
    prefix = context.input_prefix(wait)
    form = forms.schema_form(wait.request.get("schema"), request.POST, prefix=prefix)
    if not form.is_valid():
        return _run_page(request, run, bound={wait.pk: form}, status=400)
    try:
        input_answer(request_id=wait.pk, data=form.data_value(), answered_by=request.user)
    except WaitClosed:
        return _run_page(request, run, error="This input request was already answered.", status=409)
    except InvalidInput as exc:
        forms.add_service_errors(form, exc.errors, str(exc))
        return _run_page(request, run, bound={wait.pk: form}, status=400)
    except WaitNotFound:
        raise Http404("No such input request.") from None
    messages.success(request, f"Answer sent to '{wait.key}'. The run continues.")
    return redirect("review:run", pk=run.pk)


@require_POST
@reviewer_required
def prompt_answer(request: HttpRequest, pk: Any, wait_id: Any) -> HttpResponse:
    """A button of a workflow's prompt (``selectors.PROMPT_EVENT``): sends its data to the
    event the run waits for. The data comes from the stored prompt, never from the form."""
    run = _run_or_404(request, pk)
    item = next((w for w in s.open_waits(request.user, run) if w.wait.pk == wait_id), None)
    if item is None or not item.buttons:
        return _run_page(request, run, error="The run no longer waits for this.", status=409)
    if not item.can_send:
        return _run_page(request, run, error="You may not send events.", status=403)
    # ASCII digits only: "²" passes isdigit() and then fails in int().
    index = whole_number(request.POST.get("button", ""), maximum=len(item.buttons) - 1)
    if index is None:
        return _run_page(request, run, error="Unknown button.", status=400)
    button = item.buttons[index]
    event_notify(event_id=item.wait.event_id, data=button.get("data"))
    messages.success(request, f"Sent '{button.get('label', 'answer')}'. The run continues.")
    return redirect("review:run", pk=run.pk)


def _run_page(
    request: HttpRequest,
    run: WorkflowRun,
    *,
    bound: dict | None = None,
    error: str = "",
    status: int = 200,
) -> HttpResponse:
    page_context = {**context.run_context(request, run, bound=bound), "error": error}
    return render(request, "approvals/review/run.html", page_context, status=status)
