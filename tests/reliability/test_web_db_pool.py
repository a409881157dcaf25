"""The ASGI server's PostgreSQL connections: a bounded pool that survives cut connections."""

import http.client

import pytest
from django.contrib.auth.models import User
from rest_framework.authtoken.models import Token

from tests.conftest import requires_postgres
from tests.realtime.processes import Stack

from .test_db_terminate import other_backends, terminate_other_backends

pytestmark = [requires_postgres, pytest.mark.multiprocess, pytest.mark.django_db(transaction=True)]

POOL_SIZE = 3


@pytest.fixture
def web(tmp_path):
    stack = Stack(tmp_path)
    stack.env["HITL_DB_POOL_SIZE"] = str(POOL_SIZE)
    stack.start(cluster=False)
    try:
        yield stack
    except BaseException:
        print(stack.logs())
        raise
    finally:
        stack.stop()


@pytest.fixture
def token():
    return Token.objects.create(user=User.objects.create_user("pool-reader")).key


def statuses(stack: Stack, token: str, count: int) -> list[int]:
    conn = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=15)
    found = []
    try:
        for _ in range(count):
            conn.request("GET", "/api/v1/approvals/", headers={"Authorization": f"Token {token}"})
            response = conn.getresponse()
            response.read()
            found.append(response.status)
    finally:
        conn.close()
    return found


def test_the_web_server_holds_at_most_its_pool_of_connections(web, token):
    # Without the pool daphne opened a connection for request after request and kept them
    # (9 server processes after 40 reads): a busy site ran PostgreSQL out of connections.
    before = other_backends()
    assert statuses(web, token, 60) == [200] * 60
    assert other_backends() - before <= POOL_SIZE


def test_the_web_server_answers_after_postgresql_cut_its_connections(web, token):
    assert statuses(web, token, 3) == [200] * 3
    assert terminate_other_backends() >= 1
    # The pool checks a connection before lending it and replaces the dead ones: no 500.
    assert statuses(web, token, 5) == [200] * 5
