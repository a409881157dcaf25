"""JSON Schema for a workflow's input serializer: shown by the API and used to build forms."""

from typing import Any

from rest_framework import serializers

_SIMPLE: list[tuple[type, dict[str, Any]]] = [
    (serializers.BooleanField, {"type": "boolean"}),
    (serializers.IntegerField, {"type": "integer"}),
    (serializers.FloatField, {"type": "number"}),
    (serializers.DecimalField, {"type": "string", "format": "decimal"}),
    (serializers.EmailField, {"type": "string", "format": "email"}),
    (serializers.URLField, {"type": "string", "format": "uri"}),
    (serializers.UUIDField, {"type": "string", "format": "uuid"}),
    (serializers.DateTimeField, {"type": "string", "format": "date-time"}),
    (serializers.DateField, {"type": "string", "format": "date"}),
    (serializers.CharField, {"type": "string"}),
    (serializers.DictField, {"type": "object"}),
    (serializers.JSONField, {}),
]


def serializer_json_schema(serializer_class: type | None) -> dict[str, Any]:
    """Describe a DRF serializer's writable fields as a JSON Schema object."""
    if serializer_class is None:
        return {"type": "object"}
    return _object_schema(serializer_class())


def _object_schema(serializer: serializers.Serializer) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    required: list[str] = []
    for name, field in serializer.fields.items():
        if field.read_only:
            continue
        properties[name] = field_schema(field)
        if field.required:
            required.append(name)
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    return schema


def field_schema(field: serializers.Field) -> dict[str, Any]:
    if isinstance(field, serializers.Serializer):
        schema = _object_schema(field)
    elif isinstance(field, serializers.ListSerializer):
        schema = {"type": "array", "items": field_schema(field.child)}
    elif isinstance(field, serializers.ChoiceField):
        schema = {"enum": list(field.choices)}
    elif isinstance(field, serializers.ListField):
        schema = {"type": "array", "items": field_schema(field.child)}
    else:
        schema = next((dict(s) for cls, s in _SIMPLE if isinstance(field, cls)), {})
    for attr, key in (
        ("min_value", "minimum"),
        ("max_value", "maximum"),
        ("max_length", "maxLength"),
        ("min_length", "minLength"),
    ):
        value = getattr(field, attr, None)
        if value is not None:
            schema[key] = float(value) if hasattr(value, "as_tuple") else value
    if field.label:
        schema["title"] = str(field.label)
    if field.help_text:
        schema["description"] = str(field.help_text)
    if getattr(field, "allow_null", False):
        schema["nullable"] = True
    return schema
