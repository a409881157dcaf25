"""A worker's database connection cut while it is idle: the next advance reconnects."""

import psycopg
import pytest
from django.db import close_old_connections, connection

from tests.conftest import requires_postgres
from workflows import start
from workflows.engine import advance
from workflows.models import WorkflowRun

pytestmark = [requires_postgres, pytest.mark.django_db(transaction=True)]


def test_a_worker_whose_idle_connection_was_cut_reconnects_for_the_next_run():
    """Workers skip Django's per-task ping; the claim itself finds the dead connection, and the
    advance goes ahead on a new one instead of failing the task."""
    run = start("typed", {"order_id": 1, "amount": "2.50"})
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    settings = connection.settings_dict
    with psycopg.connect(
        host=settings["HOST"],
        port=settings["PORT"] or 5432,
        user=settings["USER"],
        dbname=settings["NAME"],
        autocommit=True,
    ) as other:
        assert other.execute("SELECT pg_terminate_backend(%s)", [pid]).fetchone()[0]
    close_old_connections()  # what django-q2 does before each task
    assert advance(run.pk) == "completed"
    assert WorkflowRun.objects.get(pk=run.pk).result == {"order_id": 1, "amount": "2.50"}
