"""The REST API's writes fuzzed through DRF: start, cancel and retry runs, answer input
requests, send events, decide, claim and delegate approvals, with bodies whose every field is
sometimes wrong (or which are not JSON at all) and ids that exist, do not, or are not ids.
Whatever arrives, the answer is never a 5xx, and a refusal (any 4xx) carries a message and
changes nothing: the database is compared before and after every request.

Figures (status codes seen) are printed with ``-s`` and written to var/reliability/.
``HITL_RELIABILITY_LARGE=1`` sends 1,000 requests instead of 200."""

import json
import uuid
from collections import Counter

import pytest
from django.contrib.auth.models import User
from hypothesis import example, given
from hypothesis import strategies as st
from rest_framework.test import APIClient

from approvals.api.serializers import DECIDE_ACTIONS

from .conftest import LARGE
from .figures import backend, record
from .fuzzing import check_answer, fuzz_settings, json_values, maybe, snapshot, status_figures

pytestmark = pytest.mark.django_db

EXAMPLES = 1000 if LARGE else 200
API = "/api/v1"
# Stand-ins for the target's current objects, put in when the request is sent.
APPROVAL, INPUT, RUN = "<approval>", "<input>", "<run>"


def ids_for(path: str) -> st.SearchStrategy:
    """Mostly the object the path is about, sometimes none or one that does not exist."""
    own = APPROVAL if path.startswith("approvals") else INPUT if "input" in path else RUN
    return st.sampled_from([own, own, own, "nope", str(uuid.UUID(int=7))])


words = st.text(max_size=30)

OPERATIONS = {
    "runs/": st.fixed_dictionaries(
        {},
        optional={
            "workflow": maybe(st.sampled_from(["typed", "ask", "event-timeout", "nope", ""])),
            "input": maybe(
                st.fixed_dictionaries(
                    {}, optional={"order_id": maybe(st.integers()), "amount": maybe(words)}
                )
            ),
            "idempotency_key": maybe(words),
        },
    ),
    "runs/{id}/cancel/": st.fixed_dictionaries({}, optional={"reason": maybe(words)}),
    "runs/{id}/retry/": st.fixed_dictionaries({}),
    "input-requests/{id}/answer/": st.fixed_dictionaries(
        {},
        optional={
            "data": maybe(
                st.fixed_dictionaries(
                    {}, optional={"approved": maybe(st.booleans()), "note": maybe(words)}
                )
            )
        },
    ),
    "events/": st.fixed_dictionaries(
        {},
        optional={
            "event_id": maybe(st.sampled_from(["fuzz-event", "other", ""])),
            "data": json_values,
        },
    ),
    "approvals/{id}/decide/": st.fixed_dictionaries(
        {},
        optional={
            "action": maybe(st.sampled_from([action.value for action in DECIDE_ACTIONS])),
            "comment": maybe(words),
            "value": json_values,
            "stage": maybe(st.sampled_from(["review", "nope"])),
        },
    ),
    "approvals/{id}/claim/": st.fixed_dictionaries(
        {}, optional={"release": maybe(st.booleans()), "comment": maybe(words)}
    ),
    "approvals/{id}/delegate/": st.fixed_dictionaries(
        {},
        optional={
            "users": maybe(st.lists(st.sampled_from(["ann", "otto", "ghost"]), max_size=2)),
            "groups": maybe(st.lists(st.sampled_from(["reviewers", "nope"]), max_size=2)),
        },
    ),
}

requests = st.sampled_from(sorted(OPERATIONS)).flatmap(
    lambda path: st.tuples(
        st.just(path),
        ids_for(path),
        OPERATIONS[path],
        st.one_of(st.none(), st.none(), st.none(), st.binary(max_size=48)),
    )
)


def test_fuzzed_api_writes_never_fail_with_5xx_and_refused_ones_change_nothing(target):
    statuses: Counter = Counter()
    client = APIClient()
    # Allowed to do everything, so the requests get past permissions to the input checks.
    client.force_authenticate(User.objects.create_superuser("root"))

    @fuzz_settings(EXAMPLES)
    @given(request=requests)
    # Always tried: accepted writes of three kinds, and refused ones.
    @example(request=("approvals/{id}/decide/", APPROVAL, {"action": "edit", "value": 1}, None))
    @example(request=("input-requests/{id}/answer/", INPUT, {"data": {"approved": True}}, None))
    @example(request=("events/", RUN, {"event_id": "fuzz-event", "data": {"n": 1}}, None))
    @example(request=("runs/", RUN, {"workflow": "typed", "input": {"order_id": 0}}, None))
    @example(request=("approvals/{id}/decide/", APPROVAL, {"action": "reject"}, None))
    def send(request):
        path, which, body, raw = request
        target.refresh()
        real = {
            APPROVAL: target.approval.pk,
            INPUT: target.input.pk,
            RUN: target.event_run.pk,
        }.get(which, which)
        url = f"{API}/{path.format(id=real)}"
        before = snapshot()
        # Encoded here, not by the test client: Python's json writes Infinity, as a careless
        # client might, and DRF's strict parser must refuse it.
        payload = json.dumps(body).encode() if raw is None else raw
        response = client.generic("POST", url, payload, content_type="application/json")
        statuses[response.status_code] += 1
        check_answer(response, before, (url, body, raw))

    send()
    found = status_figures(statuses, **backend())
    record(f"api_fuzz_{found['database']}", "API writes fuzzed", found)
    assert found["accepted"] >= 3 and statuses[400] >= 1
