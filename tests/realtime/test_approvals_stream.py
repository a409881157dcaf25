"""``/ws/approvals/``: approval.* events of the runs a user may see, cursor = event id."""

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer

from approvals import approval_decide
from approvals.models import ApprovalRequest
from realtime import selectors
from realtime.delivery import forward
from workflows import start
from workflows.models import RunEvent
from workflows.testing import run_until_idle

from .conftest import connect_to, make_user, run_ws

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def rita(db):
    """The reviewer the rt-approval workflow assigns."""
    return make_user("rita")


def approval_run(user, tag):
    run = start("rt-approval", {"tag": tag}, created_by=user)
    run_until_idle()
    return run


async def frames_of(comm, count):
    return [await comm.receive_json_from(timeout=5) for _ in range(count)]


def _approve(run_id, reviewer):
    request = ApprovalRequest.objects.get(run_id=run_id)
    approval_decide(request=request, actor=reviewer, action="approve", comment="fine")
    run_until_idle()


async def approve(run, reviewer):
    await database_sync_to_async(_approve)(run.id, reviewer)


def approval_event_ids(*runs) -> list[int]:
    """What the database says the stream owes, in cursor order."""
    return list(
        RunEvent.objects.filter(run__in=runs, type__startswith="approval.")
        .order_by("pk")
        .values_list("pk", flat=True)
    )


def test_each_user_gets_the_approval_events_of_runs_they_may_see(alice, bob, operator, rita):
    run_a = approval_run(alice, "a")
    run_b = approval_run(bob, "b")
    created_a = RunEvent.objects.get(run=run_a, type="approval.created")

    async def scenario():
        alice_ws = connect_to("/ws/approvals/?since=0", token=alice.token)
        operator_ws = connect_to("/ws/approvals/?since=0", token=operator.token)
        await alice_ws.connect()
        await operator_ws.connect()

        caught_up = await frames_of(alice_ws, 1)
        assert [(f["type"], f["run"]) for f in caught_up] == [("approval.created", str(run_a.id))]
        assert caught_up[0]["data"]["title"] == "Sign off a"
        # The stream's cursor is the event's id; the run's own sequence is run_seq.
        assert (caught_up[0]["seq"], caught_up[0]["run_seq"]) == (created_a.pk, created_a.seq)
        everything = await frames_of(operator_ws, 2)
        assert {f["run"] for f in everything} == {str(run_a.id), str(run_b.id)}

        await approve(run_b, rita)
        await approve(run_a, rita)
        owed_alice = await database_sync_to_async(approval_event_ids)(run_a)
        owed_all = await database_sync_to_async(approval_event_ids)(run_a, run_b)
        assert len(owed_alice) > 1  # the decision produced approval.updated events

        live_alice = await frames_of(alice_ws, len(owed_alice) - 1)
        assert [f["seq"] for f in caught_up + live_alice] == owed_alice
        assert {(f["type"], f["run"]) for f in live_alice} == {("approval.updated", str(run_a.id))}
        assert live_alice[-1]["data"]["status"] == "approved"
        assert await alice_ws.receive_nothing(timeout=0.6)  # not bob's, not run.* events
        everything += await frames_of(operator_ws, len(owed_all) - 2)
        assert [f["seq"] for f in everything] == owed_all
        assert all(f["type"].startswith("approval.") for f in everything)
        await alice_ws.disconnect()
        await operator_ws.disconnect()

    run_ws(scenario)


def test_reconnecting_with_the_last_seq_resumes_without_repeats(alice, rita):
    run_a = approval_run(alice, "a")
    run_b = approval_run(alice, "b")
    first_id, second_id = approval_event_ids(run_a, run_b)

    async def scenario():
        ws = connect_to(f"/ws/approvals/?since={first_id}", token=alice.token)
        await ws.connect()
        (second,) = await frames_of(ws, 1)
        assert (second["seq"], second["type"]) == (second_id, "approval.created")
        await ws.disconnect()
        await approve(run_a, rita)  # happens while the client is away
        missed_ids = [
            pk
            for pk in await database_sync_to_async(approval_event_ids)(run_a, run_b)
            if pk > second_id
        ]
        ws = connect_to("/ws/approvals/", token=alice.token)
        await ws.connect()
        await ws.send_json_to({"since": second["seq"]})
        missed = await frames_of(ws, len(missed_ids))
        assert [f["seq"] for f in missed] == missed_ids
        assert missed[-1]["data"]["status"] == "approved"
        assert await ws.receive_nothing(timeout=0.5)
        await ws.disconnect()

    run_ws(scenario)


def test_an_event_committed_after_a_higher_id_is_still_delivered(alice, rita, settings):
    """Two decisions commit in the opposite order of their event ids; the stream delivers the
    lower id after the higher one instead of taking it for one it already sent."""
    settings.HITL_REALTIME_DELIVERY = "relay"
    settings.HITL_REALTIME_RELAY_INTERVAL = 30  # only this test's forward() delivers
    run_a = approval_run(alice, "a")
    run_b = approval_run(alice, "b")
    start_at = approval_event_ids(run_a, run_b)[-1]

    async def scenario():
        ws = connect_to(f"/ws/approvals/?since={start_at}", token=alice.token)
        await ws.connect()
        await ws.send_json_to({"type": "ping"})  # answered once the (empty) catch-up is done
        assert (await ws.receive_json_from(timeout=5))["type"] == "pong"
        await approve(run_a, rita)
        await approve(run_b, rita)
        rows = [
            row
            for row in await database_sync_to_async(selectors.events_after_id)(start_at, 100)
            if row["type"].startswith("approval.")
        ]
        assert len({row["run_id"] for row in rows}) == 2
        # Commit order reversed: the newest event reaches the layer first, then the others.
        for row in reversed(rows):
            await forward(get_channel_layer(), [row])
        frames = await frames_of(ws, len(rows))
        assert [f["seq"] for f in frames] == [row["id"] for row in reversed(rows)]
        # A repeat from the layer is not sent twice.
        await forward(get_channel_layer(), rows[:1])
        assert await ws.receive_nothing(timeout=0.5)
        await ws.disconnect()

    run_ws(scenario)


def test_anonymous_clients_get_no_approval_stream(alice):
    async def scenario():
        ws = connect_to("/ws/approvals/?since=0")
        await ws.connect()
        output = await ws.receive_output(timeout=3)
        assert (output["type"], output["code"]) == ("websocket.close", 4401)

    run_ws(scenario)
