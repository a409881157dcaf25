"""``manage.py hitl_runs [--status S] [--workflow W] [--json]``: runs and what they wait for."""

import json
from datetime import datetime

from django.core.management.base import BaseCommand, CommandError

from workflows import clock, selectors
from workflows.models import RunStatus, WorkflowRun
from workflows.registry import registry

from ._helpers import format_time

COLUMNS = ("ID", "WORKFLOW", "STATUS", "WAITING FOR", "UNTIL", "UPDATED")


class Command(BaseCommand):
    help = (
        "List workflow runs, newest first, with their status, what each waits for "
        "(kind, key, event id) and until when (its deadline)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--status",
            action="append",
            metavar="STATUS",
            help=f"Only runs with this status ({', '.join(RunStatus.values)}). Repeatable.",
        )
        parser.add_argument("--workflow", metavar="NAME", help="Only runs of this workflow.")
        parser.add_argument(
            "--limit", type=int, default=50, help="Show at most this many runs (default 50)."
        )
        parser.add_argument("--json", action="store_true", help="Print a JSON list instead.")

    def handle(self, *args, **options):
        statuses = self._statuses(options["status"] or [])
        workflow = options["workflow"]
        if (
            workflow
            and not registry.versions(workflow)
            and not WorkflowRun.objects.filter(workflow_name=workflow).exists()
        ):
            known = ", ".join(d.name for d in registry.all()) or "none"
            raise CommandError(
                f"Unknown workflow '{workflow}': it is not registered and has no runs. "
                f"Registered workflows: {known}."
            )
        if options["limit"] < 1:
            raise CommandError("--limit must be at least 1.")

        runs_query = selectors.runs_with_waits(statuses=statuses, workflow_name=workflow)
        total = runs_query.count()
        runs = list(runs_query.order_by("-created_at")[: options["limit"]])
        now = clock.now()
        rows = [self._row(run, now) for run in runs]

        if options["json"]:
            self.stdout.write(json.dumps(rows, default=_isoformat, indent=2))
            return
        if not rows:
            self.stdout.write("No runs.")
            return
        self._table(rows, now)
        if total > len(rows):
            self.stdout.write(f"Showing the newest {len(rows)} of {total} runs (see --limit).")

    def _statuses(self, values: list[str]) -> list[str]:
        # Accept "--status waiting --status failed" as well as "--status waiting,failed".
        statuses = [s.strip().lower() for value in values for s in value.split(",") if s.strip()]
        unknown = [s for s in statuses if s not in RunStatus.values]
        if unknown:
            raise CommandError(
                f"Unknown status {', '.join(repr(s) for s in unknown)}. "
                f"Choose from: {', '.join(RunStatus.values)}."
            )
        return statuses

    def _row(self, run: WorkflowRun, now) -> dict:
        waiting, until = selectors.run_waiting_for(run, now)
        wait = None
        if run.wait_kind:
            wait = {
                "kind": run.wait_kind,
                "key": run.wait_key,
                "event_id": run.wait_event_id or None,
                "deadline": run.wait_deadline,
            }
        return {
            "id": str(run.id),
            "workflow": run.workflow_name,
            "version": run.workflow_version,
            "status": run.status,
            "waiting_for": wait,
            "waiting_for_text": waiting,
            "until": until,
            "idempotency_key": run.idempotency_key,
            "error": f"{run.error_type}: {run.error}" if run.error_type else run.error,
            "created_at": run.created_at,
            "updated_at": run.updated_at,
        }

    def _table(self, rows: list[dict], now) -> None:
        lines = [
            (
                row["id"],
                f"{row['workflow']} v{row['version']}",
                row["status"],
                row["waiting_for_text"] or "-",
                format_time(row["until"], now) or "-",
                format_time(row["updated_at"], now),
            )
            for row in rows
        ]
        widths = [max(len(str(v)) for v in column) for column in zip(COLUMNS, *lines, strict=False)]
        for index, line in enumerate([COLUMNS, *lines]):
            text = "  ".join(str(v).ljust(w) for v, w in zip(line, widths, strict=True)).rstrip()
            if index == 0:
                text = self.style.MIGRATE_HEADING(text)
            elif line[2] == RunStatus.FAILED:
                text = self.style.ERROR(text)
            self.stdout.write(text)


def _isoformat(value):
    # Full precision, unlike DjangoJSONEncoder (milliseconds): scripts compare these exactly.
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
