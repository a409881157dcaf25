"""JSON from API requests: malformed or too deeply nested input is a 400, never a 500.

DRF's parser catches ``ValueError`` only, so a body a thousand levels deep was a
``RecursionError``; the API reads JSON through ``hitlproject.parsing.parse_json`` instead
(which also refuses values nested beyond ``parsing.MAX_DEPTH``).
"""

from typing import Any

from django.conf import settings
from rest_framework import parsers
from rest_framework.exceptions import ParseError
from rest_framework.utils import json

from hitlproject.parsing import parse_json


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, reading through ``parse_json``."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        parser_context = parser_context or {}
        encoding = parser_context.get("encoding", settings.DEFAULT_CHARSET)
        parse_constant = json.strict_constant if self.strict else None
        try:
            # UnicodeDecodeError is a ValueError: DRF's codecs reader reported it the same way.
            return parse_json(stream.read().decode(encoding), parse_constant=parse_constant)
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
