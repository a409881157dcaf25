from collections import Counter
from dataclasses import dataclass

from django.db import connection

from .flows import LEDGER_DDL, LEDGER_DROP


def create() -> None:
    with connection.cursor() as cursor:
        for statement in LEDGER_DDL:
            cursor.execute(statement)


def drop() -> None:
    with connection.cursor() as cursor:
        for statement in LEDGER_DROP:
            cursor.execute(statement)


@dataclass
class Ledger:
    executions: list[tuple[str, float]]
    effects: Counter
    atomic: Counter

    @classmethod
    def read(cls) -> "Ledger":
        with connection.cursor() as cursor:
            cursor.execute("SELECT key, started FROM hitl_rel_ledger")
            executions = [(key, float(started)) for key, started in cursor.fetchall()]
            cursor.execute("SELECT key FROM hitl_rel_effects")
            effects = Counter(row[0] for row in cursor.fetchall())
            cursor.execute("SELECT key FROM hitl_rel_atomic")
            atomic = Counter(row[0] for row in cursor.fetchall())
        return cls(executions, effects, atomic)

    def runs_of(self, key: str) -> list[float]:
        return sorted(started for k, started in self.executions if k == key)


def executions_since(moment: float) -> int:
    """Step executions that began after ``moment`` (``time.time()``)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM hitl_rel_ledger WHERE started > %s", [moment])
        return cursor.fetchone()[0]
