"""Token authentication for WebSocket integrations (DRF's authtoken tokens).

Browsers authenticate with the session cookie (``AuthMiddlewareStack``). Other clients send
``Authorization: Token <key>`` in the handshake; when that header is present it decides alone:
a wrong or inactive token gives an anonymous user, whatever cookie came with it. Tokens are not
read from the query string, which ends up in access logs.
"""

from typing import Any

from channels.db import database_sync_to_async
from django.contrib.auth.models import AnonymousUser


def _token_from_headers(headers: list[tuple[bytes, bytes]]) -> str | None:
    for name, value in headers:
        if name.lower() == b"authorization":
            scheme, _, key = value.decode("latin1").strip().partition(" ")
            return key.strip() if scheme.lower() == "token" else ""
    return None


@database_sync_to_async
def _user_for_token(key: str) -> Any:
    from rest_framework.authtoken.models import Token

    token = Token.objects.select_related("user").filter(key=key).first() if key else None
    if token is None or not token.user.is_active:
        return AnonymousUser()
    return token.user


class TokenAuthMiddleware:
    """ASGI middleware: sets ``scope["user"]`` from an ``Authorization: Token`` header."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> Any:
        key = _token_from_headers(scope.get("headers", []))
        if key is not None:
            scope = dict(scope, user=await _user_for_token(key))
        return await self.app(scope, receive, send)
