"""Signature verification under arbitrary input: it only ever accepts a correct signature and
only ever fails with SignatureRejected (a 401), never anything else."""

import time

from django.test import override_settings
from hypothesis import given, settings
from hypothesis import strategies as st

from workflows.webhooks import SignatureRejected, sign, verify

SECRET = "fuzz-secret"
text = st.one_of(st.none(), st.text(max_size=80), st.from_regex(r"sha256=[0-9a-f]{0,70}"))


@settings(max_examples=300, deadline=None)
@given(
    timestamp=st.one_of(text, st.integers().map(str), st.builds(lambda: str(int(time.time())))),
    signature=text,
    body=st.binary(max_size=256),
)
def test_arbitrary_headers_and_bodies_are_refused_cleanly(timestamp, signature, body):
    with override_settings(HITL_WEBHOOK_SECRETS=[SECRET]):
        try:
            verify(timestamp=timestamp, signature=signature, body=body)
        except SignatureRejected:
            return
    # Accepted: then it must have been the one correct signature, within the window.
    assert signature == sign(SECRET, timestamp, body)
    assert abs(int(timestamp) - time.time()) <= 300


@settings(max_examples=100, deadline=None)
@given(body=st.binary(max_size=512), flip=st.integers(min_value=0, max_value=511))
def test_correct_signatures_pass_and_any_changed_byte_fails(body, flip):
    timestamp = str(int(time.time()))
    signature = sign(SECRET, timestamp, body)
    with override_settings(HITL_WEBHOOK_SECRETS=[SECRET]):
        assert verify(timestamp=timestamp, signature=signature, body=body) == signature
        if body:
            index = flip % len(body)
            changed = body[:index] + bytes([body[index] ^ 0x01]) + body[index + 1 :]
            try:
                verify(timestamp=timestamp, signature=signature, body=changed)
            except SignatureRejected:
                return
            raise AssertionError("a changed body passed verification")
