"""Decision records are append-only: the model, its queryset and (on PostgreSQL) the database
refuse updates and deletes."""

import pytest
from django.db import DatabaseError, connection, transaction
from django.db.models.deletion import ProtectedError

from approvals.errors import AuditImmutable
from approvals.models import ApprovalRequest, DecisionRecord
from approvals.services import approval_decide
from tests.approvals.conftest import start_and_wait
from tests.conftest import requires_postgres

pytestmark = pytest.mark.django_db


@pytest.fixture
def decided(people):
    run = start_and_wait("approvals-simple", {"requester": "rita"})
    request = ApprovalRequest.objects.get(run=run)
    record = approval_decide(request=request, actor=people.ann, action="approve", comment="ok")
    return run, request, record


def test_every_action_leaves_a_record(decided):
    _run, request, record = decided
    rows = list(request.decisions.values_list("action", "actor_name", "channel", "comment"))
    assert rows == [("create", "rita", "system", ""), ("approve", "ann", "api", "ok")]
    assert record.created_at is not None


def test_model_refuses_update_and_delete(decided):
    _, _, record = decided
    record.comment = "rewritten"
    with pytest.raises(AuditImmutable):
        record.save()
    with pytest.raises(AuditImmutable):
        record.delete()
    record.refresh_from_db()
    assert record.comment == "ok"


def test_queryset_refuses_update_and_delete(decided):
    with pytest.raises(AuditImmutable):
        DecisionRecord.objects.filter(action="approve").update(comment="x")
    with pytest.raises(AuditImmutable):
        DecisionRecord.objects.update(comment="x")  # on the manager too
    with pytest.raises(AuditImmutable):
        DecisionRecord.objects.all().delete()
    with pytest.raises(AuditImmutable):
        DecisionRecord.objects.bulk_update(list(DecisionRecord.objects.all()), ["comment"])
    assert DecisionRecord.objects.count() == 2


def test_deleting_a_run_with_an_audit_is_refused(decided):
    run, _, _ = decided
    with pytest.raises(ProtectedError):
        run.delete()


def test_new_records_can_still_be_added(decided):
    _, request, _ = decided
    assert DecisionRecord.objects.create(
        request=request, action="comment", channel="api", created_at=request.created_at
    ).pk


@requires_postgres
def test_postgres_trigger_refuses_raw_update_and_delete(decided):
    assert connection.vendor == "postgresql"
    for sql in (
        "UPDATE approvals_decisionrecord SET comment = 'forged'",
        "DELETE FROM approvals_decisionrecord",
    ):
        with (
            pytest.raises(DatabaseError, match="append-only"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(sql)
    assert DecisionRecord.objects.filter(comment="forged").count() == 0
    assert DecisionRecord.objects.count() == 2
