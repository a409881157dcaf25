"""The admin approval queue in a real browser: a new request appears in the list without
reloading (for two reviewers), reject without a reason is refused, edit shows the diff, the
second reviewer's request page follows the decision, and the run's timeline reaches finished."""

import pytest
from playwright.sync_api import expect

from approvals.models import ApprovalRequest, ApprovalStatus
from workflows.models import RunStatus, WorkflowRun

from .conftest import PASSWORD, screenshot

pytestmark = [pytest.mark.multiprocess, pytest.mark.django_db(transaction=True)]

LIVE = 20_000
QUEUE = "/admin/approvals/approvalrequest/"


def admin_sign_in(page, username):
    page.goto(f"/admin/login/?next={QUEUE}")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#changelist")).to_be_visible()
    # Fold the admin's navigation sidebar: room for the queue's columns (and screenshots).
    page.evaluate("localStorage.setItem('django.admin.navSidebarIsOpen', 'false')")
    page.reload()
    page.wait_for_selector("[data-live-connected]", state="attached", timeout=LIVE)
    page.evaluate("window.__notReloaded = true")


def test_the_admin_queue_updates_live_and_decides_through_the_forms(stack, reviewers, pages):
    ann, bob = pages(), pages()
    admin_sign_in(ann, "ann")
    admin_sign_in(bob, "bob")
    expect(ann.locator("#hitl-queue-rows")).to_contain_text("Nothing here")

    run_id = stack.start_run(
        "browser-expense", {"title": "Printer toner", "amount": 300, "requested_by": "rita"}, "rita"
    )
    stack.start_run(
        "browser-expense",
        {"title": "Office chairs", "amount": 2400, "requested_by": "rita"},
        "rita",
    )
    for page in (ann, bob):
        rows = page.locator("#result_list")
        expect(rows).to_contain_text("Printer toner", timeout=LIVE)
        expect(rows).to_contain_text("Office chairs", timeout=LIVE)
        expect(rows).to_contain_text("review waiting 0 of 1")
        assert page.evaluate("window.__notReloaded === true")
    screenshot(ann, "admin-queue")

    ann.locator("#result_list").get_by_role("link", name="Printer toner").click()
    bob.locator("#result_list").get_by_role("link", name="Printer toner").click()
    for page in (ann, bob):
        page.wait_for_selector("[data-live-connected]", state="attached", timeout=LIVE)
    bob.evaluate("window.__notReloaded = true")

    # Reject without a reason is refused (by the browser, and by the server without it).
    reason = ann.locator("#reject-form textarea")
    ann.locator("#reject-form").get_by_role("button", name="Reject").click()
    assert reason.evaluate("field => field.validity.valueMissing")
    reason.evaluate("field => field.removeAttribute('required')")
    ann.locator("#reject-form").get_by_role("button", name="Reject").click()
    expect(ann.locator("#reject-form")).to_contain_text("A reason is required to reject.")
    assert ApprovalRequest.objects.get(run_id=run_id).status == ApprovalStatus.PENDING

    # Edit: the diff is shown before anything is decided.
    ann.locator("#edit-form").get_by_label("Amount").fill("250")
    ann.get_by_role("button", name="Preview changes").click()
    diff = ann.locator("#edit-confirm table.diff")
    expect(diff.locator("del").first).to_have_text("300")
    expect(diff.locator("ins").first).to_have_text("250")
    screenshot(ann, "admin-request")
    assert ApprovalRequest.objects.get(run_id=run_id).status == ApprovalStatus.PENDING
    ann.get_by_role("button", name="Approve with these changes").click()
    expect(ann.locator(".messagelist")).to_contain_text("Edited and approved: Printer toner.")
    expect(ann.locator("#hitl-history")).to_contain_text("Edited and approved")

    # The worker finishes the run: both pages follow by themselves.
    expect(ann.locator("#run-outcome")).to_contain_text("Workflow finished", timeout=LIVE)
    expect(bob.locator("#approval-actions")).to_contain_text("Nothing left to decide", timeout=LIVE)
    expect(bob.locator("#run-outcome")).to_contain_text("Workflow finished", timeout=LIVE)
    expect(bob.locator("#approval-state")).to_contain_text("Changed from the original")
    assert bob.evaluate("window.__notReloaded === true")
    run = WorkflowRun.objects.get(pk=run_id)
    assert (run.status, run.result) == (RunStatus.COMPLETED, {"paid": True, "paid_amount": 250})

    # Bob watches the other run in the runs admin while ann approves it in bulk.
    chairs = ApprovalRequest.objects.get(title="Office chairs")
    bob.goto(f"/admin/workflows/workflowrun/{chairs.run_id}/change/")
    bob.wait_for_selector("[data-live-connected]", state="attached", timeout=LIVE)
    bob.evaluate("window.__notReloaded = true")
    expect(bob.locator("#run-timeline")).not_to_contain_text("run.finished")
    ann.goto(QUEUE)
    ann.locator("#result_list tr", has_text="Office chairs").locator("input.action-select").check()
    ann.locator("select[name=action]").select_option("approve_selected")
    ann.get_by_role("button", name="Go").click()
    expect(ann.locator("#hitl-will-decide")).to_contain_text("These will be approved (1)")
    ann.get_by_role("button", name="Yes, approve 1 request").click()
    expect(ann.locator(".messagelist")).to_contain_text("Approved 1: Office chairs.")
    expect(bob.locator("#run-timeline")).to_contain_text("run.finished", timeout=LIVE)
    assert bob.evaluate("window.__notReloaded === true")
    screenshot(bob, "admin-run-timeline")
