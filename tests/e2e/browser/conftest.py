"""Browser tests: Playwright for Python driving Debian's Chromium against a real daphne and a
real django-q2 worker that share the pytest database.

The browser is never downloaded (no ``playwright install``): the tests use
``/usr/bin/chromium`` and skip, saying how to install it, when it is missing.
"""

import os
import shutil
from pathlib import Path

import pytest
from django.contrib.auth.models import Group, Permission, User

from tests.realtime.processes import Stack

CHROMIUM = os.environ.get("HITL_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).resolve().parents[3] / "docs" / "screenshots"
PASSWORD = "browser-pass-42"

if not (Path(CHROMIUM).exists() or shutil.which("chromium")):
    pytest.skip(
        f"Chromium not found at {CHROMIUM}: install Debian's package with "
        "`sudo apt-get install -y chromium` (the browser tests never download a browser).",
        allow_module_level=True,
    )
playwright_api = pytest.importorskip(
    "playwright.sync_api",
    reason="Playwright for Python is missing: pip install -e '.[test]'",
)

pytestmark = [pytest.mark.multiprocess, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def stack(django_db_setup, django_db_blocker, tmp_path_factory):
    """daphne + qcluster on the test database, shared by the tests of a module."""
    # With REDIS_URL (CI's second pass) the servers use Redis: broker, channel layer, publish.
    running = Stack(
        tmp_path_factory.mktemp("browser"),
        os.environ.get("REDIS_URL") or None,
        workflow_modules="tests.e2e.browser.flows",
        workers=2,
    )
    running.env["HITL_TIMER_TICK_SECONDS"] = "0.2"
    running.env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)  # the servers keep Django's guard
    try:
        running.start()
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def browser():
    # Playwright's sync API keeps an event loop on this thread, which Django's ORM takes for
    # an async context; the tests' own queries are plain synchronous code.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        yield from _chromium()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


def _chromium():
    with playwright_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(
                Path(CHROMIUM) if Path(CHROMIUM).exists() else shutil.which("chromium")
            ),
            args=CHROMIUM_ARGS,
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def reviewers(transactional_db):
    """Two staff reviewers in the ``reviewers`` group and a requester, with passwords."""
    group, _ = Group.objects.get_or_create(name="reviewers")
    view = Permission.objects.filter(codename__in=["view_approvalrequest", "view_workflowrun"])
    people = {}
    for name in ("ann", "bob", "rita"):
        user = User.objects.create_user(name, f"{name}@example.com", PASSWORD, is_staff=True)
        user.first_name = name.capitalize()
        user.save()
        user.user_permissions.add(*view)
        if name != "rita":
            user.groups.add(group)
        people[name] = user
    return people


@pytest.fixture
def pages(browser, stack):
    """Opens pages in separate browser contexts (one per signed-in person)."""
    contexts = []

    def open_page():
        context = browser.new_context(
            base_url=f"http://127.0.0.1:{stack.port}", viewport={"width": 1200, "height": 860}
        )
        context.set_default_timeout(20_000)
        contexts.append(context)
        return context.new_page()

    yield open_page
    for context in contexts:
        context.close()


def screenshot(page, name: str) -> None:
    """A small PNG for the README (docs/screenshots)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))
