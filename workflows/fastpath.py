"""The engine's hottest journal writes as single statements, on PostgreSQL.

A step boundary (complete one step, start the next) and the end of a run are each one
statement built from data-modifying CTEs: one round trip and one commit instead of a
transaction of four or five ORM statements. They do exactly what ``journal`` does with the ORM
(the path SQLite takes, and the one the test suite runs in embedded mode), under the same rules:

* every write is conditional on the worker still holding the run's lease; the ``UPDATE`` of
  the run is the guard and the other parts run only ``WHERE EXISTS`` its row, so a lost lease
  writes nothing and returns None;
* the run's row lock taken by that ``UPDATE`` hands out event sequence numbers one at a time,
  as ``outbox.next_event_seq`` does;
* status changes use ``transitions.status_guard``, the same legality table as ``transition``.
"""

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from django.db import connection
from django.db.models import Q

from .models import RunEvent, RunStatus, Step, StepStatus, WorkflowRun
from .outbox import publish_after_commit
from .transitions import status_guard

RUN = WorkflowRun._meta.db_table
STEP = Step._meta.db_table
EVENT = RunEvent._meta.db_table
# Every column of a step row, in the order the INSERTs here and in ``journal`` give them.
STEP_COLUMNS = (
    "(run_id, sequence, name, kind, status, result, error, error_type, traceback, attempts, "
    "max_attempts, next_attempt_at, started_at, finished_at)"
)


def available() -> bool:
    return connection.vendor == "postgresql"


def _db(model: type, field: str, value: Any) -> Any:
    return model._meta.get_field(field).get_db_prep_save(value, connection)


def _where(model: type, condition: Q) -> tuple[str, list[Any]]:
    """``condition`` as SQL on ``model``'s table (columns qualified by the table's name)."""
    query = model.objects.filter(condition).query
    return query.get_compiler(connection=connection).compile(query.where)


# Compiling a Q costs about 0.2 ms, 6 % of a whole run's worker CPU when done per claim; the
# SQL of a condition of "now" is the same every time, so it is compiled once per process with
# a stand-in instant that is then replaced by the real one.
_NOW = datetime(1970, 1, 1, tzinfo=UTC)
_compiled: dict[Callable, tuple[str, list[Any]]] = {}


def _where_at(
    model: type, condition: Callable[[datetime], Q], now: datetime
) -> tuple[str, list[Any]]:
    """``_where(model, condition(now))``, compiled once per condition."""
    if condition not in _compiled:
        _compiled[condition] = _where(model, condition(_NOW))
    sql, params = _compiled[condition]
    return sql, [now if param == _NOW else param for param in params]


def _run_pk(run_id: Any) -> Any:
    return _db(WorkflowRun, "id", run_id)


def _events(run_id: Any, rows: list[tuple], data: dict[str, dict], now: datetime) -> None:
    """Publish the events a statement inserted (``rows``: id, seq, type) after commit."""
    events = [
        RunEvent(pk=pk, run_id=run_id, seq=seq, type=type_, data=data[type_], created_at=now)
        for pk, seq, type_ in sorted(rows, key=lambda row: row[1])
    ]
    publish_after_commit(events)


# A CTE completing step ``id`` only if the lease-guarding ``r`` matched; its parameters come
# from ``_complete_step_params``.
_COMPLETE_STEP = f"""
    done AS (
        UPDATE {STEP} SET status = %s, result = %s, finished_at = %s,
            error = '', error_type = '', traceback = ''
        WHERE id = %s AND EXISTS (SELECT 1 FROM r)
    )"""


def _complete_step_params(step_id: int, result: Any, at: Any) -> list[Any]:
    return [StepStatus.COMPLETED, _db(Step, "result", result), at, step_id]


def complete_and_begin(
    run_id: Any,
    owner: str,
    *,
    step_id: int,
    result: Any,
    event_data: dict,
    sequence: int,
    name: str,
    kind: str,
    max_attempts: int,
    now: datetime,
    lease_until: datetime,
) -> int | None:
    """Complete step ``step_id`` (with its ``step.finished`` event) and insert the first attempt
    of the next step, renewing the lease. Returns the new step's id, None if the lease is lost."""
    run_pk = _run_pk(run_id)
    at = _db(Step, "started_at", now)
    sql = f"""
    WITH r AS (
        UPDATE {RUN} SET event_seq = event_seq + 1, lease_expires_at = %s, updated_at = %s
        WHERE id = %s AND status = %s AND lease_owner = %s
        RETURNING event_seq
    ),{_COMPLETE_STEP},
    ev AS (
        INSERT INTO {EVENT} (run_id, seq, type, data, created_at)
        SELECT %s, event_seq, 'step.finished', %s, %s FROM r
        RETURNING id, seq, type
    ),
    nxt AS (
        INSERT INTO {STEP} {STEP_COLUMNS}
        SELECT %s, %s, %s, %s, %s, NULL, '', '', '', 1, %s, NULL, %s, NULL FROM r
        RETURNING id
    )
    SELECT ev.id, ev.seq, ev.type, nxt.id FROM ev, nxt
    """
    params = [
        _db(WorkflowRun, "lease_expires_at", lease_until),
        at,
        run_pk,
        RunStatus.RUNNING,
        owner,
        *_complete_step_params(step_id, result, at),
        run_pk,
        _db(RunEvent, "data", event_data),
        at,
        run_pk,
        sequence,
        name,
        kind,
        StepStatus.RUNNING,
        max_attempts,
        at,
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        return None
    _events(run_id, [row[:3]], {"step.finished": event_data}, now)
    return row[3]


def complete_run(
    run_id: Any,
    owner: str,
    *,
    step_id: int,
    step_result: Any,
    step_event_data: dict,
    result: Any,
    now: datetime,
) -> bool:
    """Complete the run's last step and the run itself (running -> completed), with both
    events. False if the lease is lost (cancelled or taken over): nothing is written."""
    run_pk = _run_pk(run_id)
    at = _db(WorkflowRun, "finished_at", now)
    finished_data = {"status": "completed", "result": result}
    sql = f"""
    WITH r AS (
        UPDATE {RUN} SET event_seq = event_seq + 2, status = %s, result = %s, finished_at = %s,
            lease_owner = '', lease_expires_at = NULL, updated_at = %s
        WHERE id = %s AND {status_guard(RunStatus.COMPLETED, [RunStatus.RUNNING])}
            AND lease_owner = %s
        RETURNING event_seq
    ),{_COMPLETE_STEP},
    ev AS (
        INSERT INTO {EVENT} (run_id, seq, type, data, created_at)
        SELECT %s, event_seq - 1, 'step.finished', %s, %s FROM r
        UNION ALL
        SELECT %s, event_seq, 'run.finished', %s, %s FROM r
        RETURNING id, seq, type
    )
    SELECT id, seq, type FROM ev
    """
    params = [
        RunStatus.COMPLETED,
        _db(WorkflowRun, "result", result),
        at,
        at,
        run_pk,
        owner,
        *_complete_step_params(step_id, step_result, at),
        run_pk,
        _db(RunEvent, "data", step_event_data),
        at,
        run_pk,
        _db(RunEvent, "data", finished_data),
        at,
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    if not rows:
        return False
    _events(run_id, rows, {"step.finished": step_event_data, "run.finished": finished_data}, now)
    return True


def claim(
    run_id: Any,
    owner: str,
    *,
    claimable: Callable[[datetime], Q],
    now: datetime,
    lease_until: datetime,
) -> WorkflowRun | None:
    """Take the run if ``claimable(now)`` (``engine.claimable``: the one definition of a due
    run) matches it, in one statement (``SELECT ... FOR UPDATE SKIP LOCKED`` feeding the
    ``UPDATE``). None if it is not claimable now or another worker holds its row. The returned
    run carries the columns the replay needs, with ``status``/``recovery_count`` as they were
    *before* the claim so the caller can tell a reclaim (and its count) from a first claim."""
    at = _db(WorkflowRun, "started_at", now)
    legal = status_guard(RunStatus.RUNNING, [RunStatus.PENDING, RunStatus.RUNNING])
    due_sql, due_params = _where_at(WorkflowRun, claimable, now)
    sql = f"""
    WITH c AS (
        SELECT id, status, recovery_count FROM {RUN}
        WHERE id = %s AND {due_sql}
        FOR UPDATE SKIP LOCKED
    )
    UPDATE {RUN} AS run SET status = %s, lease_owner = %s, lease_expires_at = %s,
        wake_at = NULL, enqueued_at = NULL, advance_count = run.advance_count + 1,
        started_at = COALESCE(run.started_at, %s), updated_at = %s,
        recovery_count = run.recovery_count + (CASE WHEN c.status = %s THEN 1 ELSE 0 END)
    FROM c
    WHERE run.id = c.id AND run.{legal}
    RETURNING c.status, c.recovery_count, run.workflow_name, run.workflow_version, run.input,
        run.advance_count
    """
    params = [
        _run_pk(run_id),
        *due_params,
        RunStatus.RUNNING,
        owner,
        _db(WorkflowRun, "lease_expires_at", lease_until),
        at,
        at,
        RunStatus.RUNNING,
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        return None
    status, recovery_count, name, version, raw_input, advance_count = row
    input_field = WorkflowRun._meta.get_field("input")
    return WorkflowRun(
        id=run_id,
        status=status,
        recovery_count=recovery_count,
        workflow_name=name,
        workflow_version=version,
        input=input_field.from_db_value(raw_input, None, connection),
        advance_count=advance_count,
    )


def insert_completed_step(step: Step, *, event_seq: int, event_data: dict, now: datetime) -> None:
    """Insert ``step`` (unsaved, completed) and its ``step.finished`` event as one statement."""
    run_pk = _run_pk(step.run_id)
    at = _db(Step, "finished_at", now)
    sql = f"""
    WITH s AS (
        INSERT INTO {STEP} {STEP_COLUMNS}
        VALUES (%s, %s, %s, %s, %s, %s, '', '', '', %s, %s, NULL, %s, %s)
        RETURNING id
    )
    INSERT INTO {EVENT} (run_id, seq, type, data, created_at)
    SELECT %s, %s, 'step.finished', %s, %s FROM s
    RETURNING id, (SELECT id FROM s)
    """
    params = [
        run_pk,
        step.sequence,
        step.name,
        step.kind,
        step.status,
        _db(Step, "result", step.result),
        step.attempts,
        step.max_attempts,
        _db(Step, "started_at", step.started_at),
        at,
        run_pk,
        event_seq,
        _db(RunEvent, "data", event_data),
        at,
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        event_id, step.pk = cursor.fetchone()
    _events(
        step.run_id, [(event_id, event_seq, "step.finished")], {"step.finished": event_data}, now
    )
