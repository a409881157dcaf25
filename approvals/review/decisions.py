"""One decision form POST, for the review page and the admin alike: read the form, call
``approval_decide`` with the page's channel, and say what to show next.

Actions: ``approve``, ``reject`` (reason required), ``edit-preview`` (validate the edited value
and show its diff), ``edit-confirm`` (approve with the previewed value), ``claim``, ``unclaim``.
The service's refusals come back as an ``Outcome`` with the bound form, a message and the HTTP
status the page is rendered with (400 bad input, 403 a rule, 409 already decided), never a 500.
"""

from dataclasses import dataclass, field
from typing import Any

from django.http import HttpRequest

from workflows.errors import WorkflowError

from .. import services
from ..errors import ApprovalConflict, ApprovalNotAllowed, InvalidDecision
from ..models import Action, ApprovalRequest, DecisionRecord
from ..selectors import value_diff
from . import forms


@dataclass
class Outcome:
    record: DecisionRecord | None = None  # set when the service accepted the action
    message: str = ""
    bound: dict[str, Any] = field(default_factory=dict)  # forms to show with their errors
    preview: tuple | None = None  # (diff, ConfirmEditForm) of an edit awaiting confirmation
    error: str = ""
    status: int = 200


def decide_from_post(request: HttpRequest, approval: ApprovalRequest, *, channel: str) -> Outcome:
    action = request.POST.get("action", "")
    if action in ("approve", "reject"):
        return _decide(request, approval, action, channel)
    if action == "edit-preview":
        return _edit_preview(request, approval)
    if action == "edit-confirm":
        return _edit_confirm(request, approval, channel)
    if action in ("claim", "unclaim"):
        return _call(request, approval, channel, {"action": action})
    return Outcome(error="Unknown action.", status=400)


def _decide(request: HttpRequest, approval: ApprovalRequest, action: str, channel: str) -> Outcome:
    form = forms.DecisionForm(request.POST, action=action)
    if not form.is_valid():
        return Outcome(bound={action: form}, status=400)
    data = form.cleaned_data
    kwargs = {"action": action, "comment": data["comment"], "stage": data["stage"]}
    return _call(request, approval, channel, kwargs, form=form, form_key=action)


def _edit_preview(request: HttpRequest, approval: ApprovalRequest) -> Outcome:
    if not approval.editable:
        return Outcome(error=f"'{approval.title}' is not editable.", status=403)
    form = forms.schema_form(approval.schema, request.POST, prefix="edit")
    if not form.is_valid():
        return Outcome(bound={"edit": form}, status=400)
    value = form.data_value(approval.value)
    diff = value_diff(approval.value, value)
    if not diff:
        form.add_error(None, "Nothing changed: use Approve to approve the value as it is.")
        return Outcome(bound={"edit": form}, status=400)
    confirm = forms.ConfirmEditForm(
        initial={"value": value, "stage": _int_or_none(request.POST.get("edit-stage"))}
    )
    return Outcome(bound={"edit": form}, preview=(diff, confirm))


def _edit_confirm(request: HttpRequest, approval: ApprovalRequest, channel: str) -> Outcome:
    confirm = forms.ConfirmEditForm(request.POST)
    if not confirm.is_valid():
        return Outcome(error="The edited value did not come through; edit again.", status=400)
    value = confirm.cleaned_data["value"]
    edit = forms.schema_form(
        approval.schema, prefix="edit", initial=forms.initial_for(approval.schema, value)
    )
    kwargs = {
        "action": Action.EDIT,
        "value": value,
        "comment": confirm.cleaned_data["comment"],
        "stage": confirm.cleaned_data["stage"],
    }
    return _call(request, approval, channel, kwargs, form=edit, form_key="edit")


def _call(
    request: HttpRequest,
    approval: ApprovalRequest,
    channel: str,
    kwargs: dict,
    *,
    form: Any = None,
    form_key: str = "",
) -> Outcome:
    bound = {form_key: form} if form is not None else {}
    try:
        record = services.approval_decide(
            request=approval, actor=request.user, channel=channel, **kwargs
        )
    except InvalidDecision as exc:
        if form is None:
            return Outcome(error=str(exc), status=400)
        if form_key == "edit":  # show the refused value, bound, with why
            form = forms.schema_form(approval.schema, _as_data(form), prefix="edit")
            form.is_valid()
            bound = {form_key: form}
        forms.add_service_errors(form, exc.errors, str(exc))
        return Outcome(bound=bound, status=400)
    except ApprovalNotAllowed as exc:
        return Outcome(error=str(exc), bound=bound, status=403)
    except ApprovalConflict as exc:
        return Outcome(error=str(exc), status=409)
    except WorkflowError as exc:
        return Outcome(error=str(exc), status=400)
    return Outcome(record=record, message=f"{record.get_action_display()}: {approval.title}.")


def _as_data(form: Any) -> dict:
    """A form's initial values as POST data, so it can be bound and carry errors."""
    from django import forms as django_forms

    data = {}
    for name in form.fields:
        bound_field = form[name]
        value = bound_field.value()
        if value is None:
            continue
        if isinstance(bound_field.field, django_forms.JSONField):
            value = bound_field.field.prepare_value(value)
        data[bound_field.html_name] = value
    return data


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
