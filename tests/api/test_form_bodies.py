"""Form bodies sent to the API through daphne reach Django as sent (hitlproject.server):
Twisted no longer answers multipart bodies it cannot parse with an empty 400 of its own."""

import http.client
import json
import uuid

import pytest
from django.contrib.auth.models import User
from rest_framework.authtoken.models import Token

from tests.realtime.processes import Stack
from workflows import start
from workflows.models import RunStatus, WorkflowRun

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.multiprocess]


@pytest.fixture
def web(tmp_path):
    stack = Stack(tmp_path, workflow_modules="tests.workflows.flows")
    stack.env["DEBUG"] = "false"
    stack.start(cluster=False)
    try:
        yield stack
    except BaseException:
        print(stack.logs())
        raise
    finally:
        stack.stop()


def post_multipart(stack: Stack, path: str, token: str, body: bytes, boundary: str):
    conn = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=15)
    try:
        conn.request(
            "POST",
            path,
            body=body,
            headers={
                "Authorization": f"Token {token}",
                "Content-Type": f"multipart/form-data; boundary={boundary}",
            },
        )
        response = conn.getresponse()
        return response.status, response.getheader("Content-Type"), response.read()
    finally:
        conn.close()


def empty_form(boundary: str) -> bytes:
    # What a browser sends for ``fetch(url, {method: "POST", body: new FormData()})``: a
    # multipart body without parts. Twisted's parser refused it ("Not a multipart").
    return f"--{boundary}--\r\n".encode()


def test_a_button_posting_an_empty_form_cancels_the_run(web):
    user = User.objects.create_user("ines")
    token = Token.objects.create(user=user).key
    run = start("sleeper", {"seconds": 60}, created_by=user)
    boundary = uuid.uuid4().hex

    status, _, content = post_multipart(
        web, f"/api/v1/runs/{run.pk}/cancel/", token, empty_form(boundary), boundary
    )

    assert status == 200, content
    assert json.loads(content)["status"] == RunStatus.CANCELLED
    assert WorkflowRun.objects.get(pk=run.pk).status == RunStatus.CANCELLED


def test_an_empty_form_for_an_unknown_run_gets_the_apis_404(web):
    user = User.objects.create_user("ines")
    token = Token.objects.create(user=user).key
    boundary = uuid.uuid4().hex

    status, content_type, content = post_multipart(
        web, f"/api/v1/runs/{uuid.uuid4()}/cancel/", token, empty_form(boundary), boundary
    )

    # The API's own JSON 404 for an unknown run, not an empty 400 from the server.
    assert (status, content_type) == (404, "application/json")
    assert json.loads(content)["code"] == "not_found"
