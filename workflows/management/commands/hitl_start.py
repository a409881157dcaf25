"""``manage.py hitl_start WORKFLOW --input JSON [--idempotency-key K]``"""

import json

from django.core.management.base import BaseCommand

from workflows import services
from workflows.errors import WorkflowError

from ._helpers import parse_json, workflow_error


class Command(BaseCommand):
    help = (
        "Start a run of the newest version of WORKFLOW. With --idempotency-key a second start "
        "returns the run started first instead of starting another."
    )

    def add_arguments(self, parser):
        parser.add_argument("workflow", help="Registered workflow name.")
        parser.add_argument(
            "--input",
            dest="input",
            metavar="JSON",
            help="Workflow input as a JSON object, e.g. '{\"order_id\": 7}'. Default: {}.",
        )
        parser.add_argument("--idempotency-key", dest="idempotency_key", metavar="KEY")
        parser.add_argument("--json", action="store_true", help="Print the outcome as JSON.")

    def handle(self, *args, **options):
        data = parse_json(options["input"], argument="--input")
        try:
            run, created = services.run_start(
                workflow_name=options["workflow"],
                input=data,
                idempotency_key=options["idempotency_key"],
            )
        except WorkflowError as exc:
            raise workflow_error(exc) from None

        if options["json"]:
            outcome = {
                "id": str(run.id),
                "workflow": run.workflow_name,
                "version": run.workflow_version,
                "status": run.status,
                "created": created,
                "idempotency_key": run.idempotency_key,
            }
            self.stdout.write(json.dumps(outcome))
            return
        if created:
            self.stdout.write(
                self.style.SUCCESS(
                    f"Started run {run.id} of {run.workflow_name} v{run.workflow_version}: "
                    f"{run.status}"
                )
            )
        else:
            self.stdout.write(
                self.style.WARNING(
                    f"Run {run.id} of {run.workflow_name} v{run.workflow_version} already exists "
                    f"for idempotency key '{run.idempotency_key}': {run.status}. "
                    "Nothing new was started."
                )
            )
