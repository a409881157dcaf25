"""``manage.py hitl_demo``: reviewer accounts and a few runs of every seed scenario."""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from approvals.selectors import approval_queue_for
from examples import demo
from workflows.models import RunStatus, WaitKind, WaitPoint, WaitStatus, WorkflowRun


class Command(BaseCommand):
    help = (
        "Create demo reviewer accounts (groups managers, finance, ceo, senior-managers, "
        "reviewers, operators) and start a few runs of each seed example, so the approval "
        "queue has something in it. Safe to run again: nothing is created twice."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--advance",
            action="store_true",
            help="Advance the new runs in this process until they wait, so the queue fills "
            "without a worker (otherwise start one: manage.py qcluster).",
        )
        parser.add_argument(
            "--worker-running",
            action="store_true",
            help="A worker cluster runs or is being started alongside (dev up): do not suggest "
            "starting one.",
        )

    def handle(self, *args, advance: bool, worker_running: bool = False, **options):
        if not settings.HITL_DEMO_ACCOUNTS:
            raise CommandError(
                "hitl_demo creates staff accounts with the published password "
                f"'{demo.DEMO_PASSWORD}'; these settings do not allow it (HITL_DEMO_ACCOUNTS)."
            )
        accounts = demo.ensure_accounts()
        self.stdout.write(self.style.MIGRATE_HEADING("Accounts (log in at /admin/):"))
        for result in accounts:
            account = result.account
            password = (
                f"password '{demo.DEMO_PASSWORD}'"
                if result.created
                else "existed already, password unchanged"
            )
            groups = ", ".join(account.groups) or "no group"
            self.stdout.write(
                f"  {account.username:<15} {groups:<16} {password:<38} {account.role}"
            )
        self.stdout.write(f"  API token of 'operator': {demo.operator_token()}")

        started = demo.start_demo_runs()
        if advance:
            demo.advance_until_waiting([run.pk for _, run, created in started if created])
        self.stdout.write(self.style.MIGRATE_HEADING("Demo runs:"))
        for item, run, created in started:
            run.refresh_from_db()
            what = "started" if created else "exists "
            self.stdout.write(f"  {what} {item.workflow:<26} {item.key:<20} {run.pk} {run.status}")

        self.stdout.write(self.style.MIGRATE_HEADING("Waiting for people:"))
        User = get_user_model()
        for result in accounts:
            user = User.objects.get(username=result.account.username)
            queued = approval_queue_for(user).count()
            if queued:
                self.stdout.write(f"  {user.username:<15} {queued} approval(s) in their queue")
        run_ids = [run.pk for _, run, _ in started]
        for wait in WaitPoint.objects.filter(
            run_id__in=run_ids, status=WaitStatus.OPEN, kind__in=[WaitKind.EVENT, WaitKind.INPUT]
        ).order_by("created_at"):
            if wait.kind == WaitKind.EVENT:
                self.stdout.write(f"  event  manage.py hitl_notify {wait.event_id} --data JSON")
            else:
                request_id = wait.event_id or wait.pk
                self.stdout.write(f"  input  manage.py hitl_answer {request_id} --data JSON")
        waiting = WorkflowRun.objects.filter(status=RunStatus.WAITING).count()
        self.stdout.write(f"  {waiting} run(s) waiting in total: manage.py hitl_runs")
        if not advance and not worker_running:
            self.stdout.write("Start a worker to advance the runs: python manage.py qcluster")
