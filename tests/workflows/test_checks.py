"""System checks and production settings."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.checks import run_checks
from django.db import connection
from django.test import override_settings

from tests.conftest import requires_postgres

ROOT = Path(__file__).resolve().parents[2]


def check_ids():
    return {message.id for message in run_checks()}


def test_default_settings_pass_the_queue_checks():
    assert not {"workflows.E001", "workflows.E002", "workflows.E003"} & check_ids()


@override_settings(Q_CLUSTER={"timeout": 60, "retry": 60, "orm": "default"})
def test_retry_not_above_timeout_is_an_error():
    assert "workflows.E001" in check_ids()


@override_settings(HITL_LEASE_SECONDS=10)
def test_lease_shorter_than_the_task_timeout_is_an_error():
    assert "workflows.E002" in check_ids()


def test_check_deploy_with_production_settings_is_clean():
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "hitlproject.settings_production",
        "SECRET_KEY": "x" * 20 + "-production-secret-for-the-deploy-check-0123456789",
        "ALLOWED_HOSTS": "hitl.example.com",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout
    # The switch test_hitl_demo.py exercises is off in these settings.
    shown = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "shell",
            "-c",
            "from django.conf import settings; print(settings.HITL_DEMO_ACCOUNTS)",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shown.stdout.strip().splitlines()[-1] == "False", shown.stderr


def test_production_settings_refuse_a_missing_secret_key():
    env = {k: v for k, v in os.environ.items() if k != "SECRET_KEY"}
    env.update(
        DJANGO_SETTINGS_MODULE="hitlproject.settings_production", ALLOWED_HOSTS="hitl.example.com"
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def database_vendor(url: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DATABASE_URL": url}
    return subprocess.run(
        [
            sys.executable,
            "manage.py",
            "shell",
            "-c",
            "from django.db import connection as c; print(c.vendor)",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_an_empty_database_url_means_the_embedded_database():
    # A blank "DATABASE_URL=" line in a .env or compose file: it failed with KeyError 'ENGINE'.
    result = database_vendor("")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "sqlite"


def test_a_database_url_that_is_not_one_says_so_without_echoing_it():
    result = database_vendor("posgres//hitl:s3cret@db/hitl")
    assert result.returncode != 0
    assert "DATABASE_URL is not a database URL" in result.stderr
    assert "s3cret" not in result.stderr


def email_backend(**extra_env) -> str:
    env = {k: v for k, v in os.environ.items() if k != "EMAIL_URL"}
    env.update(extra_env)
    result = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "shell",
            "-c",
            "from django.conf import settings as s; "
            "print(s.EMAIL_BACKEND, s.EMAIL_HOST, s.EMAIL_PORT, s.EMAIL_USE_TLS)",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip().splitlines()[-1]  # after the shell's own banner


def test_email_goes_to_files_by_default_and_follows_email_url():
    # The embedded default has no mail server: mail goes to files, not to a failing SMTP.
    assert email_backend().startswith("django.core.mail.backends.filebased.EmailBackend")
    assert email_backend(EMAIL_URL="smtp+tls://mailer:pw@mail.example.com:587") == (
        "django.core.mail.backends.smtp.EmailBackend mail.example.com 587 True"
    )


@requires_postgres
@pytest.mark.django_db
def test_postgresql_connections_do_not_jit_compile():
    # A misestimated plan made PostgreSQL spend 0.8 s compiling a query that ran in 50 ms.
    with connection.cursor() as cursor:
        cursor.execute("SHOW jit")
        assert cursor.fetchone()[0] == "off"
