import pytest

import tests.workflows.flows as flows


@pytest.fixture(autouse=True)
def _fresh_counters():
    flows.executions.clear()
    flows.failures_left.clear()
    flows.mutable["first"] = "charge-card"
