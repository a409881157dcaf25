"""``Idempotency-Key`` for API POSTs that change state: a repeat returns the first response.

The first request with a key stores a placeholder (a unique row per user and key), acts, then
stores its response. A repeat with the same method, path and body (for multipart, the same
fields and files) gets that stored response with ``Idempotent-Replayed: true``; the same key
with a different request is refused (422), and a repeat while the first is still being
processed gets 409. A request that fails with an exception stores nothing, so it can simply be
sent again.
"""

import hashlib
import json
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, transaction
from rest_framework import status
from rest_framework.response import Response

from workflows.models import IdempotentRequest

from .errors import error_body

HEADER = "Idempotency-Key"


def idempotent(action: Callable[..., Response]) -> Callable[..., Response]:
    @wraps(action)
    def wrapper(view: Any, request: Any, *args: Any, **kwargs: Any) -> Response:
        key = request.headers.get(HEADER)
        if key is None or not request.user.is_authenticated:
            return action(view, request, *args, **kwargs)
        key = key.strip()
        if not key or len(key) > 255:
            return Response(
                error_body("invalid_idempotency_key", f"{HEADER} must be 1 to 255 characters."),
                status=status.HTTP_400_BAD_REQUEST,
            )
        fingerprint = _fingerprint(request)
        try:
            with transaction.atomic():
                record = IdempotentRequest.objects.create(
                    user=request.user, key=key, fingerprint=fingerprint
                )
        except IntegrityError:
            return _replay(request.user, key, fingerprint)
        try:
            response = action(view, request, *args, **kwargs)
        except BaseException:
            record.delete()
            raise
        if response.status_code >= 500:
            record.delete()
        else:
            record.status_code, record.response = response.status_code, response.data
            record.save(update_fields=["status_code", "response"])
        return response

    return wrapper


def _fingerprint(request: Any) -> str:
    """What makes two requests "the same": method, path and body.

    A multipart body is fingerprinted by its parsed fields and files instead: its raw bytes
    are gone once something read ``request.POST`` (DRF's CSRF check for session logins does),
    and they hold a boundary that a client picks at random for every request, so a faithful
    repeat would not match them anyway.
    """
    if request.content_type.split(";")[0].strip().lower() == "multipart/form-data":
        fields = sorted(
            [name, [_part(value) for value in values]] for name, values in request.data.lists()
        )
        content = json.dumps(fields, separators=(",", ":")).encode()
        parts = [request.method.encode(), request.path.encode(), b"multipart/form-data", content]
    else:
        parts = [request.method.encode(), request.path.encode(), request.body]
    return hashlib.sha256(b"\n".join(parts)).hexdigest()


def _part(value: Any) -> Any:
    if isinstance(value, UploadedFile):
        digest = hashlib.sha256()
        for chunk in value.chunks():  # chunks() starts at the beginning; the view can reread
            digest.update(chunk)
        value.seek(0)
        return {"file": value.name, "sha256": digest.hexdigest()}
    return value


def _replay(user: Any, key: str, fingerprint: str) -> Response:
    record = IdempotentRequest.objects.get(user=user, key=key)
    if record.fingerprint != fingerprint:
        return Response(
            error_body(
                "idempotency_key_reused",
                f"{HEADER} '{key}' was already used for a different request.",
            ),
            status=status.HTTP_422_UNPROCESSABLE_ENTITY,
        )
    if record.status_code is None:
        return Response(
            error_body(
                "idempotency_key_in_progress",
                f"A request with {HEADER} '{key}' is still being processed.",
            ),
            status=status.HTTP_409_CONFLICT,
        )
    return Response(
        record.response, status=record.status_code, headers={"Idempotent-Replayed": "true"}
    )
