"""``manage.py hitl_notify EVENT_ID --data JSON``: resolve event waits from any process."""

import json

from django.core.management.base import BaseCommand

from workflows import services
from workflows.errors import WorkflowError

from ._helpers import parse_json, workflow_error


class Command(BaseCommand):
    help = (
        "Resolve every wait_for_event on EVENT_ID with the given data. If no run waits for it "
        "yet, the event is stored and delivered to the first wait for that id registered later."
    )

    def add_arguments(self, parser):
        parser.add_argument("event_id", help="The event id the workflow waits for.")
        parser.add_argument(
            "--data",
            metavar="JSON",
            help="The event's payload as JSON (any JSON value). Default: null.",
        )
        parser.add_argument("--json", action="store_true", help="Print the outcome as JSON.")

    def handle(self, *args, **options):
        data = parse_json(options["data"], argument="--data")
        try:
            result = services.event_notify(event_id=options["event_id"], data=data)
        except WorkflowError as exc:
            raise workflow_error(exc) from None

        if options["json"]:
            self.stdout.write(json.dumps(result.as_dict()))
        elif result.stored:
            self.stdout.write(
                self.style.WARNING(
                    f"No run waits for event '{result.event_id}' yet: stored (0 runs resumed). "
                    "It will be delivered to the first wait for this event id."
                )
            )
        else:
            runs = "run" if result.resumed == 1 else "runs"
            self.stdout.write(
                self.style.SUCCESS(f"Event '{result.event_id}': {result.resumed} {runs} resumed.")
            )
