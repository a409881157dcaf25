"""Serializer fields for request input that must never turn odd input into a 500."""

from typing import Any

from rest_framework import serializers

from hitlproject.parsing import MAX_DEPTH, NestedTooDeeply, parse_json


class JSONField(serializers.JSONField):
    """DRF's JSONField, except that a form or multipart field (a JSON string, which the field
    parses itself, not the API's JSON parser) nested too deeply is refused with a message
    rather than a RecursionError (see ``hitlproject.parsing``)."""

    default_error_messages = {
        "too_deep": f"Value must not be nested more than {MAX_DEPTH} levels deep.",
    }

    def to_internal_value(self, data: Any) -> Any:
        if self.binary or getattr(data, "is_json_string", False):
            try:
                if isinstance(data, bytes):
                    data = data.decode()
                return parse_json(data, cls=self.decoder)
            except NestedTooDeeply:
                self.fail("too_deep")
            except (TypeError, ValueError):
                self.fail("invalid")
        return super().to_internal_value(data)
