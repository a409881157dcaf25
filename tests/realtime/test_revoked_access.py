"""Sockets opened while a user could see a run, after a reassignment takes them off it: the run
stream closes (4403) instead of forwarding what follows; the approvals stream drops it."""

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth.models import Permission

from approvals import approval_decide
from approvals.models import ApprovalRequest
from realtime import selectors
from workflows import start
from workflows.testing import run_until_idle

from .conftest import connect_to, make_user, run_ws

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def people(db):
    class People:
        alice = make_user("alice")  # starts the run: always sees it
        rita = make_user("rita")  # the reviewer rt-approval assigns
        zoe = make_user("zoe")
        boss = make_user("boss")

    People.boss.user_permissions.add(Permission.objects.get(codename="decide_any"))
    return People


def _decide(run_id, actor, action, **kwargs):
    request = ApprovalRequest.objects.get(run_id=run_id)
    approval_decide(request=request, actor=actor, action=action, **kwargs)
    run_until_idle()


async def drain(comm):
    """Every frame the socket has ready (the catch-up)."""
    frames = []
    while not await comm.receive_nothing(timeout=1):
        frames.append(await comm.receive_json_from())
    return frames


def test_a_reviewer_reassigned_off_the_run_is_closed_with_4403(people):
    run = start("rt-approval", {"tag": "a"}, created_by=people.alice)
    run_until_idle()

    async def scenario():
        rita = connect_to(f"/ws/runs/{run.id}/?since=0", token=people.rita.token)
        alice = connect_to(f"/ws/runs/{run.id}/?since=0", token=people.alice.token)
        assert (await rita.connect())[0] and (await alice.connect())[0]
        assert "approval.created" in [f["type"] for f in await drain(rita)]
        await drain(alice)

        await database_sync_to_async(_decide)(
            run.id, people.boss, "reassign", users=["zoe"], comment="moving"
        )
        # Rita may no longer see the run: the reassignment's own event is not forwarded.
        closed = await rita.receive_output(timeout=5)
        assert closed == {"type": "websocket.close", "code": 4403}
        # Whoever still sees the run keeps the stream.
        assert (await alice.receive_json_from(timeout=5))["type"] == "approval.updated"

        await database_sync_to_async(_decide)(run.id, people.zoe, "approve", comment="verdict")
        later = await drain(alice)
        assert "run.finished" in [f["type"] for f in later]
        assert await rita.receive_nothing(timeout=0.5)

    run_ws(scenario)


def test_only_approval_events_after_the_last_check_ask_again(people, monkeypatch):
    """Other events, and approval events committed before access was checked, cost no query."""
    run = start("rt-approval", {"tag": "b"}, created_by=people.alice)
    run_until_idle()
    access, seq = selectors.run_access(people.rita, run.id)
    assert access is selectors.Access.OK and seq == run.events.order_by("-seq").first().seq
    checks = []
    original = selectors.run_access

    def counting(*args):
        checks.append(args)
        return original(*args)

    monkeypatch.setattr(selectors, "run_access", counting)

    async def scenario():
        rita = connect_to(f"/ws/runs/{run.id}/", token=people.rita.token)
        assert (await rita.connect())[0]
        await rita.send_json_to({"since": 0})
        assert "approval.created" in [f["type"] for f in await drain(rita)]
        # One check, at connect: it covered the catch-up.
        assert len(checks) == 1
        await database_sync_to_async(_decide)(run.id, people.rita, "approve", comment="ok")
        types = [f["type"] for f in await drain(rita)]
        assert "run.finished" in types
        # Each approval event past the last check asks at most once; the rest never do.
        assert 1 <= len(checks) - 1 <= sum(t.startswith("approval.") for t in types)

    run_ws(scenario)


def test_the_approvals_stream_stops_sending_a_reassigned_reviewer_the_run(people):
    run = start("rt-approval", {"tag": "c"}, created_by=people.alice)
    run_until_idle()
    since = selectors.last_event_id()

    async def scenario():
        rita = connect_to(f"/ws/approvals/?since={since}", token=people.rita.token)
        alice = connect_to(f"/ws/approvals/?since={since}", token=people.alice.token)
        assert (await rita.connect())[0] and (await alice.connect())[0]
        await database_sync_to_async(_decide)(
            run.id, people.boss, "reassign", users=["zoe"], comment="moving"
        )
        await database_sync_to_async(_decide)(run.id, people.zoe, "approve", comment="verdict")
        assert len(await drain(alice)) == 2  # the reassignment and the decision
        assert await rita.receive_nothing(timeout=0.5)

    run_ws(scenario)
