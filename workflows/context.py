"""``Context``: what a workflow function receives, and the replay machinery behind it.

Each durable call takes the run's next sequence number. If that sequence was recorded, the call
returns the record (after checking that it is the same call); otherwise it does the work,
records it, and only then returns. A wait that is not yet satisfied suspends the run: the
function is abandoned by raising ``Suspend`` and called again from the top when the wait is
resolved.
"""

import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NoReturn

from django.conf import settings
from django.db import transaction
from django.utils.dateparse import parse_datetime

from . import clock, journal
from .errors import InvalidInput, NonDeterminismError, StepFailed, WorkflowError
from .models import Step, StepKind, StepStatus, WaitKind, WaitPoint, WaitStatus, WorkflowRun
from .registry import to_json

# Batched steps held back before their completions are written anyway (one statement's worth).
BATCH_LIMIT = 100

# Event types the engine and apps write themselves; ctx.emit may not impersonate them.
RESERVED_EVENT_PREFIXES = ("run.", "step.", "approval.", "input.", "event.", "wait.", "presence.")


class Suspend(BaseException):
    """The run waits; the worker lets go of it. BaseException so ``except Exception`` in
    workflow code cannot swallow it."""


class RetryLater(BaseException):
    """A step failed and will be retried at a later time; the run was parked until then."""


class YieldRun(BaseException):
    """The advance used its time budget; the run goes back to the queue."""


@dataclass(frozen=True)
class InputResponse:
    """The answer to ``ctx.input_request``: ``data`` is None when it ``timed_out``."""

    request_id: str
    data: Any
    timed_out: bool
    responded_by: int | None


def as_seconds(value: float | timedelta | None) -> float | None:
    if value is None:
        return None
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


class Context:
    """The workflow's handle on the engine. Only its methods are durable; plain Python in the
    workflow body must be deterministic (same input and same recorded results -> same calls)."""

    def __init__(self, run: WorkflowRun, steps: dict[int, Step], owner: str) -> None:
        self.run_id: str = str(run.id)
        self.input: Any = run.input
        self.workflow_name: str = run.workflow_name
        self.workflow_version: int = run.workflow_version
        self._run = run
        self._steps = steps
        self._owner = owner
        self._sequence = 0
        self._started = time.monotonic()
        self._budget = settings.HITL_ADVANCE_BUDGET_SECONDS
        self._current_step: tuple[int, str] | None = None
        # Completions held back until the next journal write (journal.Finished): the last
        # step's, and those of batched steps since.
        self.pending: list[journal.Finished] = []
        # A replay error the workflow might catch and ignore; the engine fails the run anyway.
        self.fatal_error: WorkflowError | None = None

    # --- plumbing -------------------------------------------------------------------------

    def _next(self, name: str, kind: str) -> tuple[int, Step | None]:
        if self._current_step is not None:
            raise WorkflowError(
                f"ctx.{kind}('{name}') was called inside step '{self._current_step[1]}'; "
                "durable calls cannot be nested in a step."
            )
        sequence = self._sequence
        self._sequence += 1
        record = self._steps.get(sequence)
        if record is not None and (record.name != name or record.kind != kind):
            self.fatal_error = NonDeterminismError(
                f"Non-deterministic workflow '{self.workflow_name}' v{self.workflow_version}: "
                f"call #{sequence} was recorded as {record.kind} '{record.name}', but the code "
                f"now calls {kind} '{name}'. Bump the workflow version for changes like this."
            )
            raise self.fatal_error
        return sequence, record

    @property
    def idempotency_key(self) -> str:
        """Stable key for exactly-once effects in outside systems.

        Inside a step it names that step (the same for every attempt); outside, the run.
        """
        if self._current_step is None:
            return self.run_id
        return f"{self.run_id}:{self._current_step[0]}"

    @contextmanager
    def _in_step(self, sequence: int, name: str) -> Iterator[None]:
        self._current_step = (sequence, name)
        try:
            yield
        finally:
            self._current_step = None

    # --- steps ----------------------------------------------------------------------------

    def step(
        self,
        name: str,
        fn: Callable[..., Any],
        *args: Any,
        retries: int | None = None,
        backoff: float | timedelta | None = None,
        atomic: bool = False,
        batched: bool = False,
        **kwargs: Any,
    ) -> Any:
        """Run ``fn(*args, **kwargs)`` once and record its JSON result; replays return it.

        On an exception the step is retried up to ``retries`` times, waiting
        ``backoff * 2**(attempt-1)`` seconds between attempts (durably: the run is parked, no
        worker sleeps). After the last attempt ``StepFailed`` is raised into the workflow.

        ``atomic=True``: ``fn`` runs inside ``transaction.atomic()`` together with the step's
        record, so its writes to the default database commit exactly once: a worker that dies
        mid-step leaves nothing behind and the step runs again; a failed attempt's writes are
        rolled back. The run's row stays locked while ``fn`` runs (a cancel waits for it): keep
        such steps to database work.

        ``batched=True``, for short idempotent steps: nothing is written before ``fn`` runs, and
        its result is written with the run's next journal write (the next unbatched step, a
        wait, the end of the run), so a row of batched steps costs one statement instead of
        one each (an unbatched step before it is still written before it runs). The price:
        after a crash every batched step since the last write runs again,
        and a cancel takes effect at the next write, so batched steps already under way in
        this advance still run. A failing batched step is recorded like any other.
        """
        sequence, record = self._next(name, StepKind.STEP)
        if record is not None:
            if record.status == StepStatus.COMPLETED:
                return record.result
            if record.status == StepStatus.FAILED:
                raise StepFailed(name, record.error_type, record.error)
            if (
                record.status == StepStatus.RETRYING
                and record.next_attempt_at
                and record.next_attempt_at > clock.now()
            ):
                # A stray delivery before the retry is due: go back to sleep.
                raise RetryLater()
        self._check_budget()
        retries = settings.HITL_STEP_RETRIES if retries is None else retries
        max_attempts = max(1, int(retries) + 1)
        if atomic and batched:
            raise WorkflowError(
                f"ctx.step('{name}'): atomic=True and batched=True exclude each other (an atomic "
                "step is written with its own effects)."
            )
        if atomic:
            return self._atomic_step(
                sequence, name, record, max_attempts, backoff, fn, args, kwargs
            )
        if batched and record is None:
            return self._batched_step(sequence, name, max_attempts, backoff, fn, args, kwargs)
        step = self._begin(sequence, name, max_attempts, existing=record)
        try:
            value = self._call(sequence, name, fn, args, kwargs)
        except Exception as exc:
            self._attempt_failed(step, exc, backoff)
        self.pending.append(journal.Finished(step, value, clock.now()))
        return value

    def _begin(
        self, sequence: int, name: str, max_attempts: int, existing: Step | None = None
    ) -> Step:
        """Write an attempt's start, together with the completions held back so far."""
        step = journal.step_begin(
            self.run_id,
            self._owner,
            sequence,
            name,
            StepKind.STEP,
            max_attempts,
            existing=existing,
            finished=self.pending,
        )
        self.pending = []
        return step

    def _call(
        self, sequence: int, name: str, fn: Callable[..., Any], args: tuple, kwargs: dict
    ) -> Any:
        with self._in_step(sequence, name):
            value = fn(*args, **kwargs)
        return to_json(value, what=f"result of step '{name}'")

    def _batched_step(
        self,
        sequence: int,
        name: str,
        max_attempts: int,
        backoff: float | timedelta | None,
        fn: Callable[..., Any],
        args: tuple,
        kwargs: dict,
    ) -> Any:
        # An unbatched step's completion is written before the next step runs, batched or
        # not: a crash in a batched step must not re-run the (maybe expensive) step before it.
        # A wait's completion may wait longer: reading the closed wait again costs nothing.
        if len(self.pending) >= BATCH_LIMIT or any(
            f.step.pk is not None and f.step.kind == StepKind.STEP for f in self.pending
        ):
            self.flush()
        step = Step(
            run_id=self.run_id,
            sequence=sequence,
            name=name,
            kind=StepKind.STEP,
            status=StepStatus.RUNNING,
            attempts=1,
            max_attempts=max_attempts,
            started_at=clock.now(),
        )
        try:
            value = self._call(sequence, name, fn, args, kwargs)
        except Exception as exc:
            # A failure is written like any step's: the held-back completions and this
            # attempt's record first, then the retry or the failure.
            self._attempt_failed(self._begin(sequence, name, max_attempts), exc, backoff)
        self.pending.append(journal.Finished(step, value, clock.now()))
        return value

    def _atomic_step(
        self,
        sequence: int,
        name: str,
        record: Step | None,
        max_attempts: int,
        backoff: float | timedelta | None,
        fn: Callable[..., Any],
        args: tuple,
        kwargs: dict,
    ) -> Any:
        # The previous step's completion commits first, on its own: were it carried in this
        # transaction, a crash during a long atomic step would roll it back too.
        self.flush()
        now = clock.now()
        step = record or Step(run_id=self.run_id, sequence=sequence, name=name, kind=StepKind.STEP)
        step.attempts += 1
        step.max_attempts, step.next_attempt_at, step.started_at = max_attempts, None, now
        try:
            with transaction.atomic():
                seq = journal.lease_and_event_seq(self.run_id, self._owner, now)
                value = self._call(sequence, name, fn, args, kwargs)
                journal.atomic_step_close(
                    self.run_id, seq=seq, step=step, result=value, now=clock.now()
                )
        except journal.LeaseLost:
            raise
        except Exception as exc:
            step.result = None
            self._attempt_failed(
                journal.atomic_step_failed(self.run_id, self._owner, step), exc, backoff
            )
        return value

    def _attempt_failed(
        self, step: Step, exc: Exception, backoff: float | timedelta | None
    ) -> NoReturn:
        """Park the run for the next attempt, or record the step failed and raise into the
        workflow after the last one."""
        if step.attempts < step.max_attempts:
            retry_at = clock.now() + timedelta(seconds=self._backoff(backoff, step.attempts))
            journal.step_schedule_retry(self.run_id, self._owner, step, exc, retry_at)
            raise RetryLater() from exc
        journal.step_fail(self.run_id, self._owner, step, exc)
        raise StepFailed(step.name, type(exc).__qualname__, str(exc)) from exc

    def flush(self) -> None:
        """Write completions still held back (when the advance ends without another write)."""
        if self.pending:
            journal.step_complete(self.run_id, self._owner, self.pending)
            self.pending = []

    @staticmethod
    def _backoff(base: float | timedelta | None, attempt: int) -> float:
        seconds = as_seconds(base)
        if seconds is None:
            seconds = settings.HITL_STEP_BACKOFF_SECONDS
        return min(seconds * 2 ** (attempt - 1), settings.HITL_STEP_MAX_BACKOFF_SECONDS)

    def _check_budget(self) -> None:
        if time.monotonic() - self._started > self._budget:
            raise YieldRun()

    # --- waits ----------------------------------------------------------------------------

    def _wait(
        self,
        name: str,
        kind: str,
        *,
        event_id: str = "",
        request: dict | None = None,
        timeout: float | timedelta | None = None,
        on_create: Callable[[WaitPoint], None] | None = None,
    ) -> dict:
        """Register a wait (first time) and return its outcome, suspending until there is one.

        The outcome is ``{"status": "resolved"|"timed_out"|..., "data": ..., ...}``. Extension
        apps (approvals) build their waits on this, passing ``on_create`` to create their rows
        in the same transaction as the wait.
        """
        sequence, record = self._next(name, kind)
        if record is not None and record.status == StepStatus.COMPLETED:
            return record.result
        if record is not None and record.status == StepStatus.WAITING:
            # The run was woken: its wait is usually closed by now, and then one read is all
            # it takes (no lock, no transaction; see journal.closed_wait).
            wait = journal.closed_wait(self.run_id, sequence)
            if wait is not None:
                return self._consume(record, wait)
        seconds = as_seconds(timeout)
        deadline = clock.now() + timedelta(seconds=seconds) if seconds is not None else None
        wait, created_step = journal.wait_enter(
            self.run_id,
            self._owner,
            sequence=sequence,
            kind=kind,
            key=name,
            event_id=event_id,
            request=request,
            deadline=deadline,
            on_create=on_create,
            finished=self.pending,
        )
        self.pending = []
        if wait.is_open:
            raise Suspend()
        # Satisfied on arrival (a stored event message, a resolution racing the read above):
        # the step is the one just created, or the record replayed.
        return self._consume(created_step or record, wait)

    def _consume(self, step: Step, wait: WaitPoint) -> dict:
        """The closed wait's outcome; its step's completion is held back like a step's and
        written with the run's next journal write. A crash before that only means the wait is
        read again: nothing runs twice."""
        outcome = journal.wait_outcome(wait)
        self.pending.append(journal.Finished(step, outcome, clock.now()))
        return outcome

    def sleep(self, name: str, duration: float | timedelta) -> None:
        """Durable timer: the run waits ``duration`` (seconds or timedelta) holding no worker."""
        self._wait(name, WaitKind.SLEEP, timeout=duration)

    def wait_for_event(
        self, name: str, event_id: str, timeout: float | timedelta | None = None
    ) -> tuple[Any, bool]:
        """Wait until ``notify(event_id, data)``; returns ``(data, timed_out)``.

        A notify sent before this wait is registered is kept and delivered here.
        """
        if not event_id:
            raise WorkflowError(f"wait_for_event('{name}') needs a non-empty event_id.")
        outcome = self._wait(name, WaitKind.EVENT, event_id=str(event_id), timeout=timeout)
        timed_out = outcome["status"] == WaitStatus.TIMED_OUT
        return (None if timed_out else outcome["data"]), timed_out

    def input_request(
        self,
        name: str,
        *,
        prompt: str = "",
        schema: dict | None = None,
        metadata: dict | None = None,
        timeout: float | timedelta | None = None,
        request_id: str | None = None,
    ) -> InputResponse:
        """Ask a person for typed input (answered from the review page, admin or API).

        ``schema`` is a JSON Schema the answer must satisfy; ``metadata`` is shown alongside the
        prompt. ``request_id`` defaults to the wait's own id.
        """
        if schema is not None:
            check_json_schema(schema, name)
        request = {"prompt": prompt, "schema": schema, "metadata": metadata or {}}
        outcome = self._wait(
            name, WaitKind.INPUT, event_id=request_id or "", request=request, timeout=timeout
        )
        timed_out = outcome["status"] == WaitStatus.TIMED_OUT
        return InputResponse(
            request_id=request_id or outcome["wait_id"],
            data=None if timed_out else outcome["data"],
            timed_out=timed_out,
            responded_by=outcome.get("resolved_by"),
        )

    # --- recorded values ------------------------------------------------------------------

    def emit(self, type: str, data: dict | None = None) -> None:
        """Publish a custom event to the run's live stream (once, not again on replay).

        ``type`` must not use the engine's own prefixes (``run.``, ``step.``, ``approval.``...):
        clients route and trust those.
        """
        if not type or type.startswith(RESERVED_EVENT_PREFIXES):
            raise WorkflowError(
                f"ctx.emit({type!r}): event types starting with "
                f"{', '.join(RESERVED_EVENT_PREFIXES)} belong to the engine; choose another."
            )
        sequence, record = self._next(f"emit:{type}", StepKind.EMIT)
        if record is not None:
            return
        payload = to_json(data or {}, what=f"data of event '{type}'")
        journal.record_value(
            self.run_id,
            self._owner,
            sequence,
            f"emit:{type}",
            StepKind.EMIT,
            payload,
            event_type=type,
            event_data=payload,
            finished=self.pending,
        )
        self.pending = []

    def _record_value(self, sequence: int, name: str, value: Any) -> None:
        journal.record_value(
            self.run_id, self._owner, sequence, name, StepKind.VALUE, value, finished=self.pending
        )
        self.pending = []

    def now(self) -> datetime:
        """The current time, recorded: a replay returns the same instant."""
        sequence, record = self._next("now", StepKind.VALUE)
        if record is not None:
            return parse_datetime(record.result)
        value = clock.now()
        self._record_value(sequence, "now", value.isoformat())
        return value

    def uuid4(self) -> uuid.UUID:
        """A random UUID, recorded: a replay returns the same one."""
        sequence, record = self._next("uuid4", StepKind.VALUE)
        if record is not None:
            return uuid.UUID(record.result)
        value = uuid.uuid4()
        self._record_value(sequence, "uuid4", str(value))
        return value


def check_json_schema(schema: dict, name: str) -> None:
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise InvalidInput(
            f"The schema of input request '{name}' is not valid JSON Schema: {exc.message}"
        ) from exc
