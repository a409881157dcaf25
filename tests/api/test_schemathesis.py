"""Property-based API testing with schemathesis against a live server and the published
OpenAPI schema: no 5xx, and every response matches the schema (bounded examples)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from rest_framework.authtoken.models import Token

from workflows import start

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.multiprocess]

SCHEMATHESIS = shutil.which("schemathesis") or str(Path(sys.executable).parent / "schemathesis")
CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
    ]
)


def test_api_survives_schemathesis(live_server, tmp_path):
    user = User.objects.create_superuser("fuzzer", password="not-used")
    token = Token.objects.create(user=user).key
    # Some real data, so list and detail endpoints return rows, not only 404s.
    for n in range(3):
        start("sleeper", {"seconds": 60 + n}, created_by=user)
    start("ask", {"draft": 1}, created_by=user)

    result = subprocess.run(
        [
            SCHEMATHESIS,
            "run",
            f"{live_server.url}/api/schema/?format=json",
            "--url",
            live_server.url,
            "-H",
            f"Authorization: Token {token}",
            "--checks",
            CHECKS,
            "--max-examples",
            os.environ.get("HITL_SCHEMATHESIS_EXAMPLES", "15"),
            "--seed",
            "1",
            "--workers",
            "1",
            "--request-timeout",
            "20",
            "--report-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "NO_COLOR": "1"},
    )
    output = result.stdout + result.stderr
    (tmp_path / "schemathesis.log").write_text(output)
    assert result.returncode == 0, output[-8000:]
