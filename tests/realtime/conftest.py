"""Fixtures for the realtime tests: users, tokens and WebSocket communicators on the real
ASGI application (origin check, session and token auth, routing)."""

from collections.abc import Awaitable, Callable

import pytest
from asgiref.sync import async_to_sync
from channels.layers import channel_layers
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import Permission, User
from django.test import Client
from rest_framework.authtoken.models import Token

import tests.realtime.flows  # noqa: F401  (registers the test workflows)
from realtime.delivery import reset_publisher
from realtime.relay import relay

ORIGIN = "http://localhost"


@pytest.fixture(autouse=True)
def _fresh_realtime():
    # A new layer per test: in-memory queues belong to the event loop that first used them,
    # and every test runs its own loop.
    channel_layers.backends.clear()
    yield
    relay.shutdown()
    reset_publisher()
    channel_layers.backends.clear()


def make_user(username: str, *, staff: bool = False, manage_any: bool = False) -> User:
    user = User.objects.create_user(username, password="pw", is_staff=staff)
    if manage_any:
        user.user_permissions.add(Permission.objects.get(codename="manage_any_run"))
    # Kept on the object so async test code need not query for it.
    user.token = Token.objects.create(user=user).key
    return user


@pytest.fixture
def alice(db):
    return make_user("alice")


@pytest.fixture
def bob(db):
    return make_user("bob")


@pytest.fixture
def operator(db):
    """Staff with workflows.manage_any_run: sees every run."""
    return make_user("olivia", staff=True, manage_any=True)


def session_cookie_for(user: User) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


def connect_to(
    path: str,
    *,
    token: str | None = None,
    session: str | None = None,
    origin: str | None = ORIGIN,
) -> WebsocketCommunicator:
    from hitlproject.asgi import application

    headers = []
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    if token is not None:
        headers.append((b"authorization", f"Token {token}".encode()))
    if session is not None:
        headers.append((b"cookie", f"sessionid={session}".encode()))
    comm = WebsocketCommunicator(application, path, headers=headers)
    _opened.append(comm)
    return comm


# Communicators opened by the scenario that ``run_ws`` is running.
_opened: list[WebsocketCommunicator] = []


def run_ws(scenario: Callable[[], Awaitable[None]]) -> None:
    """Run an async test scenario, then disconnect every socket it opened, on its own loop.

    A client that goes away makes daphne send ``websocket.disconnect``; a communicator left
    open instead leaves its consumer running until ``asyncio.run`` tears the loop down and
    cancels the consumer and its channel-layer ``receive`` at the same moment. With
    channels-redis that double cancellation can leave the ``receive`` waiting for a Redis reply
    that never comes (reproduced about once in ten runs), which hung the loop's thread and then
    the interpreter's exit. Disconnecting like a real client does keeps the test on the path
    production takes.
    """

    async def scenario_then_disconnect() -> None:
        _opened.clear()
        try:
            await scenario()
        finally:
            for comm in _opened:
                if not comm.future.done():
                    await comm.disconnect()
            _opened.clear()

    async_to_sync(scenario_then_disconnect)()
