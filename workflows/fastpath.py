"""The engine's hottest journal writes as single statements, on PostgreSQL.

A step boundary (complete the steps held back so far, start the next) and the end of a run
are each one statement built from data-modifying CTEs: one round trip and one commit instead of a
transaction of four or five ORM statements. They do exactly what ``journal`` does with the ORM
(the path SQLite takes, and the one the test suite runs in embedded mode), under the same rules:

* every write is conditional on the worker still holding the run's lease; the ``UPDATE`` of
  the run is the guard and the other parts run only ``WHERE EXISTS`` its row, so a lost lease
  writes nothing and returns None;
* the run's row lock taken by that ``UPDATE`` hands out event sequence numbers one at a time,
  as ``outbox.next_event_seq`` does;
* status changes use ``transitions.status_guard``, the same legality table as ``transition``.
"""

from collections.abc import Callable, Sequence
from contextlib import nullcontext
from datetime import UTC, datetime
from typing import Any

from django.db import connection, connections, transaction
from django.db.models import Model, Q
from django.db.models.sql import InsertQuery

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


# The columns of a step's first attempt, running, in STEP_COLUMNS order; parameters from
# ``first_attempt_params``. Shared with ``journal._insert_first_attempt``.
FIRST_ATTEMPT = "%s, %s, %s, %s, %s, NULL, '', '', '', 1, %s, NULL, %s, NULL"


def first_attempt_params(
    run_pk: Any, sequence: int, name: str, kind: str, max_attempts: int, now: datetime
) -> list[Any]:
    return [run_pk, sequence, name, kind, StepStatus.RUNNING, max_attempts, _at(now)]


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


def _events(run_id: Any, rows: list[tuple], data: list[dict], now: datetime) -> None:
    """Publish the events a statement inserted (``rows``: id, seq, type; ``data`` in the order
    of their sequence numbers) after commit."""
    events = [
        RunEvent(pk=pk, run_id=run_id, seq=seq, type=type_, data=item, created_at=now)
        for (pk, seq, type_), item in zip(sorted(rows, key=lambda row: row[1]), data, strict=True)
    ]
    publish_after_commit(events)


# (step, result, finished at, step.finished event data), as journal.Finished describes them.
Completion = tuple[Step, Any, datetime, dict]


def _completion_ctes(run_pk: Any, completions: Sequence[Completion]) -> tuple[str, list[Any]]:
    """CTEs completing held-back steps, each only if the lease-guarding ``r`` matched: an
    ``UPDATE`` of a step whose start was written, one ``INSERT`` of the batched steps (whose
    start was not)."""
    parts: list[str] = []
    params: list[Any] = []
    inserted = []
    for step, result, at, _data in completions:
        if step.pk is None:
            inserted.append((step, result, at))
            continue
        parts.append(
            f"""
    done{len(parts)} AS (
        UPDATE {STEP} SET status = %s, result = %s, finished_at = %s,
            error = '', error_type = '', traceback = ''
        WHERE id = %s AND EXISTS (SELECT 1 FROM r)
    )"""
        )
        params += [StepStatus.COMPLETED, _db(Step, "result", result), _at(at), step.pk]
    if inserted:
        row = (
            "(%s, %s, %s, %s, %s, %s::jsonb, '', '', '', %s, %s, NULL::timestamptz, "
            "%s::timestamptz, %s::timestamptz)"
        )
        parts.append(
            f"""
    ins AS (
        INSERT INTO {STEP} {STEP_COLUMNS}
        SELECT v.* FROM (VALUES {", ".join([row] * len(inserted))}) AS v
        WHERE EXISTS (SELECT 1 FROM r)
    )"""
        )
        for step, result, at in inserted:
            params += [
                run_pk,
                step.sequence,
                step.name,
                step.kind,
                StepStatus.COMPLETED,
                _db(Step, "result", result),
                step.attempts,
                step.max_attempts,
                _at(step.started_at),
                _at(at),
            ]
    return ",".join(parts), params


def _events_cte(run_pk: Any, events: Sequence[tuple[str, dict]], at: Any) -> tuple[str, list]:
    """The ``ev`` CTE: ``events`` (type, data) numbered up to ``r.event_seq``, in order."""
    rows = ", ".join(["(%s::int, %s::varchar, %s::jsonb)"] * len(events))
    params: list[Any] = [run_pk, len(events), at]
    for n, (type_, data) in enumerate(events, start=1):
        params += [n, type_, _db(RunEvent, "data", data)]
    sql = f"""
    ev AS (
        INSERT INTO {EVENT} (run_id, seq, type, data, created_at)
        SELECT %s, r.event_seq - %s + e.n, e.type, e.data, %s
        FROM r, (VALUES {rows}) AS e (n, type, data)
        RETURNING id, seq, type
    )"""
    return sql, params


def _at(value: datetime) -> Any:
    return _db(Step, "started_at", value)


def complete_and_begin(
    run_id: Any,
    owner: str,
    *,
    completions: Sequence[Completion],
    sequence: int,
    name: str,
    kind: str,
    max_attempts: int,
    now: datetime,
    lease_until: datetime,
) -> int | None:
    """Complete the held-back steps (each with its ``step.finished`` event) and insert the
    first attempt of the next step, renewing the lease. Returns the new step's id, None if the
    lease is lost."""
    begin = f"""
    nxt AS (
        INSERT INTO {STEP} {STEP_COLUMNS}
        SELECT {FIRST_ATTEMPT} FROM r
        RETURNING id
    )"""
    params = first_attempt_params(_run_pk(run_id), sequence, name, kind, max_attempts, now)
    rows = _complete(run_id, owner, completions, now, lease_until, (begin, params))
    return rows[0][3] if rows else None


def complete_steps(
    run_id: Any,
    owner: str,
    *,
    completions: Sequence[Completion],
    now: datetime,
    lease_until: datetime,
) -> bool:
    """Complete the held-back steps on their own, renewing the lease. False if it is lost."""
    return bool(_complete(run_id, owner, completions, now, lease_until))


def _complete(
    run_id: Any,
    owner: str,
    completions: Sequence[Completion],
    now: datetime,
    lease_until: datetime,
    begin: tuple[str, list[Any]] | None = None,
) -> list[tuple]:
    """The statement behind ``complete_and_begin`` and ``complete_steps``: one row per event
    (id, seq, type, and the next step's id when ``begin`` inserts one); none if the lease is
    lost."""
    run_pk = _run_pk(run_id)
    at = _at(now)
    events = [("step.finished", data) for *_rest, data in completions]
    steps_sql, steps_params = _completion_ctes(run_pk, completions)
    events_sql, events_params = _events_cte(run_pk, events, at)
    begin_sql, begin_params = begin or ("", [])
    sql = f"""
    WITH r AS (
        UPDATE {RUN} SET event_seq = event_seq + %s, lease_expires_at = %s, updated_at = %s
        WHERE id = %s AND status = %s AND lease_owner = %s
        RETURNING event_seq
    ),{steps_sql},{events_sql}{"," + begin_sql if begin else ""}
    SELECT ev.id, ev.seq, ev.type{", nxt.id FROM ev, nxt" if begin else " FROM ev"}
    """
    params = [
        len(events),
        _db(WorkflowRun, "lease_expires_at", lease_until),
        at,
        run_pk,
        RunStatus.RUNNING,
        owner,
        *steps_params,
        *events_params,
        *begin_params,
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    if rows:
        _events(run_id, [row[:3] for row in rows], [data for _type, data in events], now)
    return rows


def complete_run(
    run_id: Any,
    owner: str,
    *,
    completions: Sequence[Completion],
    result: Any,
    now: datetime,
) -> bool:
    """Complete the held-back steps and the run itself (running -> completed), with their
    events. False if the lease is lost (cancelled or taken over): nothing is written."""
    run_pk = _run_pk(run_id)
    at = _db(WorkflowRun, "finished_at", now)
    events = [("step.finished", data) for *_rest, data in completions]
    events.append(("run.finished", {"status": "completed", "result": result}))
    steps_sql, steps_params = _completion_ctes(run_pk, completions)
    events_sql, events_params = _events_cte(run_pk, events, at)
    sql = f"""
    WITH r AS (
        UPDATE {RUN} SET event_seq = event_seq + %s, status = %s, result = %s, finished_at = %s,
            lease_owner = '', lease_expires_at = NULL, updated_at = %s
        WHERE id = %s AND {status_guard(RunStatus.COMPLETED, [RunStatus.RUNNING])}
            AND lease_owner = %s
        RETURNING event_seq
    ),{steps_sql},{events_sql}
    SELECT id, seq, type FROM ev
    """
    params = [
        len(events),
        RunStatus.COMPLETED,
        _db(WorkflowRun, "result", result),
        at,
        at,
        run_pk,
        owner,
        *steps_params,
        *events_params,
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    if not rows:
        return False
    _events(run_id, rows, [data for _type, data in events], now)
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
    _events(step.run_id, [(event_id, event_seq, "step.finished")], [event_data], now)


# The ORM's INSERT of a model's every concrete field is the same SQL for every new row; only
# the parameters change. Compiling it was 40 % of ``start``'s CPU on PostgreSQL, so it is
# compiled once per model and process.
_insert_sql: dict[type[Model], str] = {}


def _insert(obj: Model) -> tuple[str, list[Any]]:
    """The ORM's own ``INSERT`` of the new instance ``obj`` (defaults and ``auto_now`` applied
    to ``obj`` as ``save()`` would), without an auto-increment key."""
    meta = obj._meta
    fields = [f for f in meta.local_concrete_fields if f is not meta.auto_field]
    db = connections[connection.alias]  # the connection itself, not the thread-local proxy
    sql = _insert_sql.get(type(obj))
    if sql is not None:
        # What the compiler does with each plain value: pre_save, then get_db_prep_save.
        values = [field.pre_save(obj, add=True) for field in fields]
        if not any(hasattr(value, "resolve_expression") for value in values):
            return sql, [f.get_db_prep_save(v, db) for f, v in zip(fields, values, strict=True)]
    query = InsertQuery(type(obj))
    query.insert_values(fields, [obj])
    [(sql, params)] = query.get_compiler(connection=db).as_sql()
    if len(params) == len(fields):  # one placeholder per field: no expression, no DEFAULT
        _insert_sql[type(obj)] = sql
    return sql, list(params)


def start_run(run: WorkflowRun, event: RunEvent) -> None:
    """Insert a new run and its first event in one statement (the run's key is made here, the
    event's comes back), and publish the event after commit. One statement commits or fails
    whole even outside a transaction, so a duplicate idempotency key writes neither; inside a
    caller's transaction it runs in a savepoint, which that failure rolls back without
    aborting the caller's transaction."""
    run_sql, run_params = _insert(run)
    event_sql, event_params = _insert(event)
    savepoint = transaction.atomic() if connection.in_atomic_block else nullcontext()
    with savepoint, connection.cursor() as cursor:
        cursor.execute(
            f"WITH r AS ({run_sql}) {event_sql} RETURNING id", [*run_params, *event_params]
        )
        event.pk = cursor.fetchone()[0]
    for obj in (run, event):
        obj._state.adding, obj._state.db = False, connection.alias
    publish_after_commit([event])
