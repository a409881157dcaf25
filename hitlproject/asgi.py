"""ASGI entry point: HTTP through Django, WebSockets through Channels (see realtime.routing)."""

import os

from django.core.asgi import get_asgi_application

from hitlproject import process, server

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hitlproject.settings")
# Form bodies go to Django unparsed by Twisted (see hitlproject.server).
server.pass_request_bodies_through()
# Before the settings are read: this process's PostgreSQL connections come from a pool.
process.serves_asgi = True
# Django must be set up before anything imports models (the WebSocket routing does).
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from realtime.auth import TokenAuthMiddleware  # noqa: E402
from realtime.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        # Origin first (a foreign page cannot ride a reviewer's session cookie), then the
        # session user, which an "Authorization: Token" header replaces for integrations.
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(TokenAuthMiddleware(URLRouter(websocket_urlpatterns)))
        ),
    }
)
