from datetime import UTC, datetime
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils import timezone
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import Cursor, CursorPagination


class CreatedCursorPagination(CursorPagination):
    """Stable pages over lists that grow while a client pages through them."""

    ordering = "-created_at"
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500

    def paginate_queryset(self, queryset, request, view=None):
        # decode_cursor checks the cursor's position against the ordering field of this model.
        self._model = queryset.model
        return super().paginate_queryset(queryset, request, view)

    def decode_cursor(self, request) -> Cursor | None:
        # DRF answers a mangled cursor with 404; it is bad input, so say 400 and which field.
        try:
            cursor = super().decode_cursor(request)
        except NotFound:
            raise _invalid_cursor() from None
        if cursor is None or cursor.position is None:
            return cursor
        # DRF checks only that the cursor decodes; its position goes into the query as is, so
        # "p=garbage" failed there (a 500). Parse it here as the ordering field does.
        return cursor._replace(position=self._position(cursor.position))

    def _position(self, position: str) -> Any:
        field = self._model._meta.get_field(self.ordering[0].lstrip("-"))
        try:
            value = field.to_python(position)
            if isinstance(value, datetime):
                if timezone.is_naive(value):
                    value = timezone.make_aware(value)  # as Django's own lookups would
                # In UTC: PostgreSQL refuses offsets beyond +-15:59, and converting one near
                # the ends of the calendar overflows.
                value = value.astimezone(UTC)
        except (DjangoValidationError, ValueError, OverflowError):
            raise _invalid_cursor() from None
        if value is None:
            raise _invalid_cursor()
        return value


def _invalid_cursor() -> ValidationError:
    return ValidationError({"cursor": ["Invalid cursor."]})
