"""``manage.py hitl_answer REQUEST_ID --data JSON``: answer an input request."""

import json

from django.core.management.base import BaseCommand

from workflows import services
from workflows.errors import WorkflowError

from ._helpers import parse_json, workflow_error


class Command(BaseCommand):
    help = (
        "Answer an open input request (ctx.input_request) with DATA, validated against the "
        "request's JSON Schema. REQUEST_ID is the wait's id or the request_id the workflow gave it."
    )

    def add_arguments(self, parser):
        parser.add_argument("request_id")
        parser.add_argument("--data", metavar="JSON", required=True, help="The answer as JSON.")
        parser.add_argument("--json", action="store_true", help="Print the outcome as JSON.")

    def handle(self, *args, **options):
        data = parse_json(options["data"], argument="--data")
        try:
            wait = services.input_answer(request_id=options["request_id"], data=data)
        except WorkflowError as exc:
            raise workflow_error(exc) from None
        if options["json"]:
            outcome = {"wait_id": str(wait.pk), "run_id": str(wait.run_id), "status": wait.status}
            self.stdout.write(json.dumps(outcome))
        else:
            self.stdout.write(
                self.style.SUCCESS(
                    f"Answered input request '{wait.key}' of run {wait.run_id}; the run resumes."
                )
            )
