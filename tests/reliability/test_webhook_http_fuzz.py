"""The signed inbound webhook fuzzed over HTTP: whatever arrives, the answer is never a 5xx,
and a refused webhook (any 4xx) changes nothing: no decision, no receipt, no event, no
status, no access row, no user. Most bodies are correctly signed, so they get past the
signature into the actions (``event.notify``, ``approval.decide``) with arbitrary fields;
others carry a wrong, missing or stale signature.

Figures (status codes seen) are printed with ``-s`` and written to var/reliability/.
``HITL_RELIABILITY_LARGE=1`` sends 1,000 webhooks instead of 150.
"""

import json
import time
from collections import Counter

import pytest
from django.test import override_settings
from hypothesis import example, given
from hypothesis import strategies as st
from rest_framework.test import APIClient

from approvals.models import Action
from workflows.webhooks import sign

from .conftest import LARGE
from .figures import backend, record
from .fuzzing import check_answer, fuzz_settings, json_values, maybe, snapshot, status_figures

pytestmark = pytest.mark.django_db

URL = "/api/v1/webhooks/inbound/"
SECRET = "fuzz-http-secret"
EXAMPLES = 1000 if LARGE else 150
# Every action the audit knows (system-only ones included), and a few that are none.
DECISIONS = [action.value for action in Action] + ["", "APPROVE", "bogus"]

# Stand-ins for the pending approval's id (and its first characters): the request changes as
# webhooks decide it, so the id is put in when the body is sent.
PENDING, PENDING_PREFIX = "<pending>", "<pending-prefix>"


def payloads() -> st.SearchStrategy:
    """Bodies shaped like the two actions, every field sometimes wrong, plus any JSON at all."""
    approval_ids = st.sampled_from([PENDING, PENDING, "nope", PENDING_PREFIX])
    decide = st.fixed_dictionaries(
        {"action": st.just("approval.decide")},
        optional={
            "approval": maybe(approval_ids),
            "decision": maybe(st.sampled_from(DECISIONS)),
            "actor": maybe(st.sampled_from(["ann", "otto", "nobody", ""])),
            "comment": maybe(st.text(max_size=30)),
            "value": json_values,
            "stage": maybe(st.sampled_from(["review", "nope"])),
            "users": maybe(st.lists(st.sampled_from(["ann", "otto", "ghost"]), max_size=2)),
        },
    )
    notify = st.fixed_dictionaries(
        {"action": st.just("event.notify")},
        optional={
            "event_id": maybe(st.sampled_from(["fuzz-event", "other-event", ""])),
            "data": json_values,
        },
    )
    other = st.dictionaries(
        st.sampled_from(["action", "approval", "event_id"]), json_values, max_size=3
    )
    return st.one_of(decide, notify, other, json_values)


DECIDE_AS_ANN = {
    "action": "approval.decide",
    "approval": PENDING,
    "decision": "approve",
    "actor": "ann",
}


def test_fuzzed_webhooks_never_fail_with_5xx_and_refused_ones_change_nothing(target):
    statuses: Counter = Counter()
    address = iter(range(10**6))

    @fuzz_settings(EXAMPLES)
    @given(
        payload=payloads(),
        signing=st.sampled_from(["correct"] * 6 + ["flipped", "missing", "stale", "other-secret"]),
        raw=st.one_of(st.none(), st.none(), st.binary(max_size=64)),
    )
    # Always tried, whatever the draw: both actions accepted, one refused by the rules.
    @example(payload=DECIDE_AS_ANN, signing="correct", raw=None)
    @example(
        payload={"action": "event.notify", "event_id": "fuzz-event"}, signing="correct", raw=None
    )
    @example(payload=DECIDE_AS_ANN | {"decision": "reject"}, signing="correct", raw=None)
    def send(payload, signing, raw):
        target.refresh()
        if isinstance(payload, dict) and payload.get("approval") in (PENDING, PENDING_PREFIX):
            real = str(target.approval.pk)
            payload = payload | {"approval": real if payload["approval"] == PENDING else real[:8]}
        body = raw if raw is not None else json.dumps(payload).encode()
        now = int(time.time())
        timestamp = str(now - 3600 if signing == "stale" else now)
        signature = sign("another" if signing == "other-secret" else SECRET, timestamp, body)
        if signing == "flipped":
            signature = signature[:-1] + ("0" if signature[-1] != "0" else "1")
        headers = {"HTTP_X_HITL_TIMESTAMP": timestamp}
        if signing != "missing":
            headers["HTTP_X_HITL_SIGNATURE"] = signature
        before = snapshot()
        n = next(address)
        # A new client address each time: the webhook's rate limit counts per address, and
        # this is not a test of the rate limit.
        response = APIClient().generic(
            "POST",
            URL,
            body,
            content_type="application/json",
            REMOTE_ADDR=f"10.{n // 250 % 250}.{n % 250}.1",
            **headers,
        )
        statuses[response.status_code] += 1
        check_answer(response, before, payload)
        if signing != "correct":
            assert response.status_code == 401, (signing, response.content)

    with override_settings(HITL_WEBHOOK_SECRETS=[SECRET]):
        send()
    found = status_figures(statuses, **backend())
    record(f"webhook_http_fuzz_{found['database']}", "Webhook fuzz over HTTP", found)
    # The fuzz reached the actions, not only the signature check (the examples guarantee it).
    assert found["accepted"] >= 2 and statuses[400] >= 1
