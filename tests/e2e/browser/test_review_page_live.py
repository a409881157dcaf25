"""The review page in a real browser: a new request appears without reloading, a second
reviewer's page follows along, reject without a reason is refused, edit shows the diff, and
the run's timeline reaches "Workflow finished" while the worker runs it."""

import re

import pytest
from playwright.sync_api import expect

from approvals.models import ApprovalRequest, ApprovalStatus
from tests.e2e.processes import wait_until
from workflows.models import RunStatus, WorkflowRun

from .conftest import PASSWORD, screenshot

pytestmark = [pytest.mark.multiprocess, pytest.mark.django_db(transaction=True)]

LIVE = 20_000  # ms: worker + WebSocket round trips on a busy 2-core machine


def sign_in(page, username):
    page.goto("/review/login/?next=/review/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Waiting for you")).to_be_visible()


def wait_live(page):
    """The page's socket is open (so what follows arrives live, not with the first render)."""
    page.wait_for_selector("[data-live-connected]", state="attached", timeout=LIVE)
    page.evaluate("window.__notReloaded = true")


def not_reloaded(page):
    return page.evaluate("window.__notReloaded === true")


def start_expense(stack, title, amount=1200):
    data = {"title": title, "amount": amount, "requested_by": "rita"}
    return stack.start_run("browser-expense", data, "rita")


def test_reviewers_see_a_request_arrive_decide_it_and_watch_the_run_finish(stack, reviewers, pages):
    ann, bob = pages(), pages()
    sign_in(ann, "ann")
    sign_in(bob, "bob")
    wait_live(ann)
    wait_live(bob)

    run_id = start_expense(stack, "Conference tickets for 3")
    queue_row = ann.locator("#review-queue").get_by_role("link", name="Conference tickets for 3")
    expect(queue_row).to_be_visible(timeout=LIVE)
    expect(bob.locator("#review-queue")).to_contain_text("Conference tickets for 3", timeout=LIVE)
    assert not_reloaded(ann) and not_reloaded(bob)
    screenshot(ann, "review-queue")

    queue_row.click()
    expect(ann.get_by_role("heading", name="Conference tickets for 3")).to_be_visible()
    bob.locator("#review-queue").get_by_role("link", name="Conference tickets for 3").click()
    wait_live(ann)
    wait_live(bob)
    expect(ann.locator("[data-live-viewers]")).to_contain_text("Bob", timeout=LIVE)

    # Reject without a reason: the browser refuses to submit, and so does the server.
    reason = ann.get_by_label("Reason")
    ann.locator("#reject-form").get_by_role("button", name="Reject").click()
    assert ann.evaluate("document.activeElement.name") == "reject-comment"
    assert reason.evaluate("field => field.validity.valueMissing")
    reason.evaluate("field => field.removeAttribute('required')")
    reason.fill("   ")
    ann.locator("#reject-form").get_by_role("button", name="Reject").click()
    expect(ann.locator("#reject-form")).to_contain_text("A reason is required to reject.")
    approval = ApprovalRequest.objects.get(run_id=run_id)
    assert approval.status == ApprovalStatus.PENDING

    screenshot(ann, "review-request")
    # Keyboard only: Tab to the comment, type, Tab to Approve, Enter.
    ann.get_by_label("Comment").first.focus()
    ann.keyboard.type("Within the travel budget.")
    ann.keyboard.press("Tab")
    ann.keyboard.press("Enter")
    expect(ann.locator(".messages")).to_contain_text("Approved: Conference tickets for 3.")

    # The worker resumes the run; both pages follow without a reload.
    expect(ann.locator("#run-outcome")).to_contain_text("Workflow finished", timeout=LIVE)
    expect(ann.locator("#run-timeline")).to_contain_text("#2 pay")
    expect(bob.locator("#approval-actions")).to_contain_text("Nothing left to decide", timeout=LIVE)
    expect(bob.locator("#run-outcome")).to_contain_text("Workflow finished", timeout=LIVE)
    assert not_reloaded(bob)
    assert WorkflowRun.objects.get(pk=run_id).status == RunStatus.COMPLETED
    ann.goto(f"/review/runs/{run_id}/")
    expect(ann.locator("#run-outcome")).to_contain_text("Workflow finished")
    screenshot(ann, "review-run-timeline")


def test_edit_shows_the_diff_before_approving_the_changed_value(stack, reviewers, pages):
    run_id = start_expense(stack, "Team offsite", amount=4800)
    ann = pages()
    sign_in(ann, "ann")
    expect(ann.locator("#review-queue")).to_contain_text("Team offsite", timeout=LIVE)
    ann.locator("#review-queue").get_by_role("link", name="Team offsite").click()
    ann.locator("#edit-form").get_by_label("Amount").fill("4000")
    ann.locator("#edit-form").get_by_label("Note").fill("Two fewer people")
    ann.get_by_role("button", name="Preview changes").click()
    diff = ann.locator("#edit-confirm table.diff")
    expect(diff).to_contain_text("amount")
    expect(diff.locator("del").first).to_have_text("4800")
    expect(diff.locator("ins").first).to_have_text("4000")
    assert ApprovalRequest.objects.get(run_id=run_id).status == ApprovalStatus.PENDING
    ann.get_by_role("button", name="Approve with these changes").click()
    expect(ann.locator(".messages")).to_contain_text("Edited and approved")
    expect(ann.locator("#approval-state")).to_contain_text("Changed from the original")
    expect(ann.locator("#run-outcome")).to_contain_text("Workflow finished", timeout=LIVE)
    run = WorkflowRun.objects.get(pk=run_id)
    assert run.result == {"paid": True, "paid_amount": 4000}


def test_an_input_request_form_appears_live_and_its_answer_finishes_the_run(
    stack, reviewers, pages
):
    run_id = stack.start_run("browser-input", {"order": 7}, "ann")
    ann = pages()
    sign_in(ann, "ann")
    ann.goto(f"/review/runs/{run_id}/")
    form = ann.locator("#run-waits form")
    expect(form).to_be_visible(timeout=LIVE)
    expect(ann.locator("#run-waits")).to_contain_text("Ship order 7?")
    form.get_by_label("Yes").check()
    form.get_by_label("Carrier").select_option(label="UPS")
    form.get_by_role("button", name="Send answer").click()
    expect(ann.locator(".messages")).to_contain_text("Answer sent")
    expect(ann.locator("#run-outcome")).to_contain_text("Workflow finished", timeout=LIVE)
    assert WorkflowRun.objects.get(pk=run_id).result == {"ship": True, "carrier": "UPS"}


def test_after_a_reconnect_the_page_reads_itself_again(stack, reviewers, pages):
    """A request arrives while the page hears nothing of it (its frames are held back, as an
    event that committed out of order would be); once the socket drops and reconnects, the
    page reads itself again and shows it, without a reload."""
    ann = pages()
    routes = []
    deliver = {"frames": True}

    def through(route):
        server = route.connect_to_server()
        server.on_message(lambda message: deliver["frames"] and route.send(message))
        routes.append(route)

    ann.route_web_socket(re.compile(r"/ws/approvals/"), through)
    sign_in(ann, "ann")
    wait_live(ann)
    deliver["frames"] = False
    run_id = start_expense(stack, "Printer toner")
    wait_until(
        lambda: ApprovalRequest.objects.filter(run_id=run_id).exists(),
        timeout=LIVE / 1000,
        what="the request to be created",
    )
    queue = ann.locator("#review-queue")
    ann.wait_for_timeout(500)
    expect(queue).not_to_contain_text("Printer toner")  # nothing told the page
    routes[-1].close(code=4000, reason="dropped")
    expect(queue).to_contain_text("Printer toner", timeout=LIVE)
    assert len(routes) == 2 and not_reloaded(ann)
