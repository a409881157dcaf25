"""Signed decision links: GET shows what will be decided and asks to confirm (link scanners and
previews only ever GET, so GET never decides); POST decides through the decision service."""

from django.contrib.auth import get_user_model
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from . import links, services
from .errors import (
    ApprovalConflict,
    ApprovalNotAllowed,
    ApprovalNotFound,
    InvalidDecision,
    LinkExpired,
    LinkInvalid,
    LinkUsed,
)
from .models import ApprovalRequest, ApprovalStage, UsedDecisionLink
from .review.context import as_json
from .selectors import approval_diff, approval_progress


def _problem(request, title: str, message: str, status: int):
    context = {"title": title, "message": message}
    return render(request, "approvals/link_problem.html", context, status=status)


@never_cache
@require_http_methods(["GET", "POST"])
def decision_link(request, token: str):
    try:
        claims = links.read_token(token)
    except LinkExpired:
        return _problem(request, "Link expired", "This decision link has expired.", 410)
    except LinkInvalid:
        return _problem(request, "Invalid link", "This decision link is not valid.", 404)
    if UsedDecisionLink.objects.filter(nonce=claims.nonce).exists():
        return _problem(request, "Link already used", "This decision link was already used.", 410)
    approval = ApprovalRequest.objects.filter(pk=claims.request_id).first()
    stage = ApprovalStage.objects.filter(pk=claims.stage_id, request=approval).first()
    user = get_user_model().objects.filter(pk=claims.user_id).first()
    if approval is None or stage is None or user is None:
        return _problem(request, "Invalid link", "This decision link is not valid.", 404)

    context = {
        "approval": approval,
        "stage": stage,
        "action": claims.action,
        "user": user,
        "progress": approval_progress(approval),
        "diff": approval_diff(approval),
        "value_json": as_json(approval.value),  # JSON, as the review page shows it
        "error": "",
        "comment": "",
    }
    if request.method == "POST":
        context["comment"] = request.POST.get("comment", "")
        try:
            record = services.approval_decide_by_link(token=token, comment=context["comment"])
        except LinkExpired:
            return _problem(request, "Link expired", "This decision link has expired.", 410)
        except LinkUsed:
            return _problem(request, "Link already used", "This decision link was used.", 410)
        except (LinkInvalid, ApprovalNotFound):
            return _problem(request, "Invalid link", "This decision link is not valid.", 404)
        except ApprovalConflict as exc:
            return _problem(request, "Already decided", str(exc), 409)
        except ApprovalNotAllowed as exc:
            return _problem(request, "Not allowed", str(exc), 403)
        except InvalidDecision as exc:
            context["error"] = str(exc)
            return render(request, "approvals/link_confirm.html", context, status=400)
        approval.refresh_from_db()
        context.update(record=record, progress=approval_progress(approval))
        return render(request, "approvals/link_done.html", context)

    if not stage.is_open:
        message = f"Stage '{stage.name}' is no longer waiting ({stage.get_status_display()})."
        return _problem(request, "Already decided", message, 409)
    return render(request, "approvals/link_confirm.html", context)
