import os

import pytest

from . import ledger as ledger_module
from .fuzzing import Target

# `HITL_RELIABILITY_LARGE=1` runs the larger versions (more runs, more kills).
LARGE = os.environ.get("HITL_RELIABILITY_LARGE") == "1"


@pytest.fixture
def ledger():
    ledger_module.create()
    yield ledger_module
    ledger_module.drop()


@pytest.fixture
def target(db):
    """What the HTTP fuzz tests aim at (``fuzzing.Target``)."""
    return Target()
