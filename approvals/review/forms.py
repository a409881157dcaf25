"""Forms of the reviewer screens (review page and admin): decisions, and typed answers built
from a JSON Schema.

The forms only shape input; the rules (who may decide, a reject needs a reason, an edit must
match the schema) stay in ``approval_decide`` and ``input_answer``, whose per-field errors are
put back on these forms with ``add_service_errors``.
"""

import json
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.forms.fields import InvalidJSONInput, JSONString

from hitlproject.parsing import MAX_DEPTH, NestedTooDeeply, parse_json

# The HTML name of the field that holds a whole JSON value when no per-property form fits.
RAW = "value"


class JSONField(forms.JSONField):
    """``forms.JSONField`` that parses with ``parsing.parse_json``: Django's catches only
    ``JSONDecodeError``, so a value nested a few thousand levels deep raised RecursionError
    (a 500) when cleaned, and again when the bound form was shown back. Values nested deeper
    than ``parsing.MAX_DEPTH`` are refused, as on the API (the pages recurse once per level)."""

    def to_python(self, value: Any) -> Any:
        if self.disabled or not isinstance(value, str) or value in self.empty_values:
            return super().to_python(value)
        try:
            converted = parse_json(value, cls=self.decoder)
        except NestedTooDeeply:
            raise ValidationError(
                f"Nested too deeply: at most {MAX_DEPTH} levels of arrays and objects.",
                code="too_deep",
            ) from None
        except ValueError:
            raise ValidationError(
                self.error_messages["invalid"], code="invalid", params={"value": value}
            ) from None
        return JSONString(converted) if isinstance(converted, str) else converted

    def bound_data(self, data: Any, initial: Any) -> Any:
        if self.disabled or not isinstance(data, str):
            return super().bound_data(data, initial)
        try:
            # Too deep is shown back as typed: dumping it again would recurse as deep as it nests.
            return parse_json(data, cls=self.decoder)
        except ValueError:
            return InvalidJSONInput(data)


class DecisionForm(forms.Form):
    """Approve (comment optional) or reject (reason required) the open stage. The action
    itself is the submit button's ``name="action"`` value, so Enter in the form sends it."""

    # The stage the reviewer was looking at: a decision never lands on a later stage.
    stage = forms.IntegerField(widget=forms.HiddenInput, required=False)
    comment = forms.CharField(
        label="Comment",
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 2}),
    )

    def __init__(self, *args: Any, action: str = "approve", **kwargs: Any):
        kwargs.setdefault("prefix", action)
        super().__init__(*args, **kwargs)
        if action == "reject":
            field = self.fields["comment"]
            field.label = "Reason"
            field.required = True
            field.help_text = "Required: the requester and the workflow see it."
            field.error_messages["required"] = "A reason is required to reject."


class ConfirmEditForm(forms.Form):
    """Second step of an edit: the previewed value travels back as JSON."""

    stage = forms.IntegerField(widget=forms.HiddenInput, required=False)
    value = JSONField(widget=forms.HiddenInput)
    comment = forms.CharField(
        label="Comment", required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 2})
    )


class BulkRejectForm(forms.Form):
    reason = forms.CharField(
        label="Reason",
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        error_messages={"required": "A reason is required to reject."},
        help_text="Recorded on every rejected request.",
    )


# --- forms generated from a JSON Schema ---------------------------------------------------


class SchemaForm(forms.Form):
    """A form whose fields are the properties of an object schema.

    ``data_value()`` turns the cleaned data back into the JSON value the schema describes
    (optional fields left empty are omitted). Properties the generator does not know how to
    render as one input (nested objects, arrays, ``oneOf``...) get a JSON text area, as does
    a schema that is not an object with properties (one field, ``value``).
    """

    raw = False

    def data_value(self, original: Any = None) -> Any:
        """The JSON value. An optional field left empty is omitted, unless ``original`` (the
        value being edited) has it: a text then becomes ``""`` rather than disappearing, so
        an untouched empty note does not show up as a removed field in the diff."""
        if self.raw:
            return self.cleaned_data[RAW]
        original = original if isinstance(original, dict) else {}
        value = {}
        for name, field in self.fields.items():
            item = self.cleaned_data.get(name)
            if item in (None, "") and not field.required:
                if name in original and isinstance(field, forms.CharField):
                    value[name] = ""
                continue
            value[name] = item
        return value


def schema_form_class(schema: Any) -> type[SchemaForm]:
    properties = schema.get("properties") if isinstance(schema, dict) else None
    is_object = isinstance(schema, dict) and schema.get("type", "object") == "object"
    if not is_object or not isinstance(properties, dict) or not properties:
        field = JSONField(
            label="Value (JSON)",
            widget=forms.Textarea(attrs={"rows": 6, "spellcheck": "false"}),
            help_text="Any JSON value" + (" matching the schema below." if schema else "."),
        )
        return type("RawSchemaForm", (SchemaForm,), {"raw": True, RAW: field})
    required = set(schema.get("required") or ())
    fields = {
        name: _field(name, spec if isinstance(spec, dict) else {}, name in required)
        for name, spec in properties.items()
    }
    return type("GeneratedSchemaForm", (SchemaForm,), fields)


def schema_form(schema: Any, *args: Any, **kwargs: Any) -> SchemaForm:
    return schema_form_class(schema)(*args, **kwargs)


def initial_for(schema: Any, value: Any) -> dict:
    """Initial data for ``schema_form`` from a current JSON value (the edit form)."""
    form_class = schema_form_class(schema)
    if form_class.raw:
        return {RAW: value}
    if not isinstance(value, dict):
        return {}
    initial = {}
    for name, field in form_class.base_fields.items():
        if name not in value:
            continue
        item = value[name]
        if isinstance(field, forms.TypedChoiceField) and isinstance(item, bool):
            item = "true" if item else "false"
        elif isinstance(field, forms.ChoiceField) and not isinstance(field, forms.TypedChoiceField):
            item = json.dumps(item)
        initial[name] = item
    return initial


def add_service_errors(form: forms.Form, errors: Any, message: str) -> None:
    """Put a service's ``{field: [messages]}`` on the form; unknown fields on the whole form."""
    if not isinstance(errors, dict) or not errors:
        form.add_error(None, message)
        return
    for name, messages in errors.items():
        for text in messages if isinstance(messages, list | tuple) else [messages]:
            target = name if name in form.fields else None
            if target is None and getattr(form, "raw", False):
                target = RAW
            label = "" if target or name in ("non_field_errors", "value") else f"{name}: "
            form.add_error(target, f"{label}{text}")


def _field(name: str, spec: dict, required: bool) -> forms.Field:
    label = spec.get("title") or name.replace("_", " ").capitalize()
    common = {"label": label, "required": required, "help_text": spec.get("description", "")}
    if "enum" in spec and isinstance(spec["enum"], list):
        return _EnumField(spec["enum"], **common)
    kind = spec.get("type")
    if kind == "boolean":
        if not required:
            return forms.BooleanField(**common)
        # A required yes/no is asked explicitly: an unticked box would silently mean "no".
        return forms.TypedChoiceField(
            choices=(("true", "Yes"), ("false", "No")),
            coerce=lambda text: text == "true",
            widget=forms.RadioSelect,
            **common,
        )
    if kind == "integer":
        return forms.IntegerField(
            min_value=spec.get("minimum"), max_value=spec.get("maximum"), **common
        )
    if kind == "number":
        return _NumberField(min_value=spec.get("minimum"), max_value=spec.get("maximum"), **common)
    if kind == "string":
        return _string_field(spec, common)
    return JSONField(
        widget=forms.Textarea(attrs={"rows": 3, "spellcheck": "false"}),
        **{**common, "help_text": common["help_text"] or "JSON"},
    )


def _string_field(spec: dict, common: dict) -> forms.Field:
    max_length, min_length = spec.get("maxLength"), spec.get("minLength")
    fmt = spec.get("format")
    if fmt == "email":
        return forms.EmailField(max_length=max_length, min_length=min_length, **common)
    if fmt == "date":
        return _DateField(widget=forms.DateInput(attrs={"type": "date"}), **common)
    long_text = max_length is None or max_length > 200
    widget = forms.Textarea(attrs={"rows": 3}) if long_text else forms.TextInput
    return forms.CharField(max_length=max_length, min_length=min_length, widget=widget, **common)


class _NumberField(forms.FloatField):
    def clean(self, value: Any) -> Any:
        number = super().clean(value)
        # JSON has one number type: 4500.0 typed as "4500" stays 4500 in the value and its diff.
        return int(number) if isinstance(number, float) and number.is_integer() else number


class _DateField(forms.DateField):
    def clean(self, value: Any) -> Any:
        day = super().clean(value)
        return day.isoformat() if day else day


class _EnumField(forms.ChoiceField):
    """Choices of any JSON type: the option values are the JSON texts of the enum members."""

    def __init__(self, members: list, **kwargs: Any):
        self.members = {json.dumps(member): member for member in members}
        choices = [(text, str(member)) for text, member in self.members.items()]
        if not kwargs.get("required"):
            choices.insert(0, ("", "---------"))
        super().__init__(choices=choices, **kwargs)

    def clean(self, value: Any) -> Any:
        text = super().clean(value)
        return self.members.get(text) if text else None
