"""In-flight runs keep their version; a run whose version's code is gone fails clearly."""

import pytest

from workflows import notify, start
from workflows.models import RunStatus
from workflows.registry import registry
from workflows.testing import run_until_idle

pytestmark = pytest.mark.django_db


@pytest.fixture
def restore_registry():
    saved = {v: registry.get("versioned", v) for v in registry.versions("versioned")}
    yield
    registry.unregister("versioned")
    for definition in saved.values():
        registry.register(definition)


def test_in_flight_runs_finish_on_their_version_while_new_runs_take_the_newest(
    restore_registry,
):
    v2 = registry.get("versioned", 2)
    registry.unregister("versioned", 2)  # the world before v2 was deployed
    old = start("versioned", {"tag": "old"})
    run_until_idle()
    registry.register(v2)  # deploy v2 while `old` waits
    new = start("versioned", {"tag": "new"})
    run_until_idle()
    assert (old.workflow_version, new.workflow_version) == (1, 2)

    notify("ver-old")
    notify("ver-new")
    run_until_idle()
    old.refresh_from_db()
    new.refresh_from_db()
    assert old.result == {"version": 1}
    assert new.result == {"version": 2}


def test_run_whose_version_is_gone_fails_without_replaying_other_code(restore_registry):
    v2 = registry.get("versioned", 2)
    registry.unregister("versioned", 2)
    run = start("versioned", {"tag": "gone"})
    run_until_idle()
    # A deploy replaced v1 by v2 without keeping v1's code.
    registry.unregister("versioned", 1)
    registry.register(v2)
    notify("ver-gone")
    run_until_idle()
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert run.error_type == "WorkflowVersionMissing"
    assert "version 1 is not registered" in run.error
    assert run.result is None
