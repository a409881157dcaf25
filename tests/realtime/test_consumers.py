"""The WebSocket consumers on the real ASGI stack: who gets in, and what they receive."""

import uuid

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer

from realtime.delivery import forward
from realtime.groups import run_group
from realtime.messages import group_message
from realtime.selectors import run_events_after
from workflows import notify, start
from workflows.testing import run_until_idle

from .conftest import connect_to, make_user, run_ws, session_cookie_for

pytestmark = pytest.mark.django_db(transaction=True)

REVIEW_EVENTS = [
    "run.started",
    "step.finished",
    "progress",
    "run.waiting",
    "event.received",
    "step.finished",  # the wait's step, completed with the next step's start
    "step.finished",
    "run.finished",
]


def waiting_review(user, tag="a"):
    """A rt-review run of ``user`` advanced to its wait (events 1-4 committed)."""
    run = start("rt-review", {"order_id": 7, "tag": tag}, created_by=user)
    run_until_idle()
    return run


async def receive_frames(comm, count, timeout=5):
    return [await comm.receive_json_from(timeout=timeout) for _ in range(count)]


async def receive_events(comm, count, timeout=5):
    """The next ``count`` run events, skipping presence frames (which have no seq)."""
    frames = []
    while len(frames) < count:
        frame = await comm.receive_json_from(timeout=timeout)
        if frame["seq"] is not None:
            frames.append(frame)
    return frames


async def close_code(comm):
    output = await comm.receive_output(timeout=3)
    assert output["type"] == "websocket.close", output
    return output.get("code")


async def decide(tag, data):
    await database_sync_to_async(notify)(f"decision-{tag}", data)
    await database_sync_to_async(run_until_idle)()


# --- who gets in ----------------------------------------------------------------------------


def test_anonymous_connection_is_closed_with_4401(alice):
    run = waiting_review(alice)

    async def scenario():
        comm = connect_to(f"/ws/runs/{run.id}/?since=0")
        await comm.connect()
        assert await close_code(comm) == 4401

    run_ws(scenario)


def test_wrong_or_missing_origin_is_refused_at_the_handshake(alice):
    run = waiting_review(alice)
    token = alice.token

    async def scenario():
        for origin in ("http://evil.example", None):
            comm = connect_to(f"/ws/runs/{run.id}/?since=0", token=token, origin=origin)
            connected, _ = await comm.connect()
            assert connected is False, origin

    run_ws(scenario)


def test_someone_elses_run_is_refused_with_4403_and_an_unknown_one_with_4404(alice, bob):
    run = waiting_review(alice)
    token = bob.token

    async def scenario():
        comm = connect_to(f"/ws/runs/{run.id}/?since=0", token=token)
        await comm.connect()
        assert await close_code(comm) == 4403
        comm = connect_to(f"/ws/runs/{uuid.uuid4()}/?since=0", token=token)
        await comm.connect()
        assert await close_code(comm) == 4404

    run_ws(scenario)


def test_staff_with_manage_any_run_may_watch_every_run_but_plain_staff_may_not(alice, operator):
    run = waiting_review(alice)
    plain_staff = make_user("sam", staff=True)

    async def scenario():
        comm = connect_to(f"/ws/runs/{run.id}/?since=3", token=operator.token)
        await comm.connect()
        assert [f["type"] for f in await receive_frames(comm, 1)] == ["run.waiting"]
        await comm.disconnect()
        comm = connect_to(f"/ws/runs/{run.id}/?since=3", token=plain_staff.token)
        await comm.connect()
        assert await close_code(comm) == 4403

    run_ws(scenario)


def test_session_cookie_authenticates_a_browser(alice):
    run = waiting_review(alice)
    session = session_cookie_for(alice)

    async def scenario():
        comm = connect_to(f"/ws/runs/{run.id}/?since=3", session=session)
        await comm.connect()
        assert (await comm.receive_json_from(timeout=5))["seq"] == 4
        await comm.disconnect()

    run_ws(scenario)


def test_a_wrong_token_is_refused_even_with_a_valid_session(alice):
    run = waiting_review(alice)
    session = session_cookie_for(alice)

    async def scenario():
        comm = connect_to(f"/ws/runs/{run.id}/?since=0", token="not-a-token", session=session)
        await comm.connect()
        assert await close_code(comm) == 4401

    run_ws(scenario)


def test_inactive_users_token_is_refused(alice):
    run = waiting_review(alice)
    token = alice.token
    alice.is_active = False
    alice.save()

    async def scenario():
        comm = connect_to(f"/ws/runs/{run.id}/?since=0", token=token)
        await comm.connect()
        assert await close_code(comm) == 4401

    run_ws(scenario)


@pytest.mark.parametrize(
    ("path_suffix", "message", "code"),
    [
        ("?since=-1", None, 4400),
        ("?since=abc", None, 4400),
        ("", '{"since": "soon"}', 4400),
        ("", "not json", 4400),
        ("", "[1, 2]", 4400),
        ("", '{"since": 0, "pad": "' + "x" * 5000 + '"}', 4413),
    ],
)
def test_malformed_or_oversized_client_messages_close_the_socket(alice, path_suffix, message, code):
    run = waiting_review(alice)
    token = alice.token

    async def scenario():
        comm = connect_to(f"/ws/runs/{run.id}/{path_suffix}", token=token)
        await comm.connect()
        if message is not None:
            await comm.send_to(text_data=message)
        assert await close_code(comm) == code

    run_ws(scenario)


@pytest.mark.parametrize("stream", ["run", "approvals"])
@pytest.mark.parametrize(
    ("path_suffix", "message"),
    [
        ("", '{"since": Infinity}'),
        ("", '{"since": -Infinity}'),
        ("", '{"since": NaN}'),
        ("", '{"since": 1e400}'),
        ("", '{"since": 2.9}'),
        ("", '{"since": 2.0}'),
        ("", '{"since": true}'),
        ("", '{"since": "\u00b2"}'),
        ("", '{"since": ' + "9" * 30 + "}"),
        ("?since=2.9", None),
        ("?since=%C2%B2", None),
        ("?since=" + "9" * 30, None),
        ("", "[" * 2000 + "]" * 2000),  # deep enough for a RecursionError, within 4096 bytes
    ],
)
def test_a_since_that_is_not_an_integer_closes_the_socket_with_4400(
    alice, stream, path_suffix, message
):
    run = waiting_review(alice)
    path = f"/ws/runs/{run.id}/" if stream == "run" else "/ws/approvals/"

    async def scenario():
        comm = connect_to(path + path_suffix, token=alice.token)
        await comm.connect()
        if message is not None:
            await comm.send_to(text_data=message)
        assert await close_code(comm) == 4400

    run_ws(scenario)


def test_a_since_of_digits_in_a_message_still_starts_the_stream(alice):
    run = waiting_review(alice)

    async def scenario():
        comm = connect_to(f"/ws/runs/{run.id}/", token=alice.token)
        await comm.connect()
        await comm.send_json_to({"since": "3"})
        assert [f["seq"] for f in await receive_frames(comm, 1)] == [4]

    run_ws(scenario)


def test_binary_frames_close_the_socket_with_4400(alice):
    run = waiting_review(alice)

    async def scenario():
        comm = connect_to(f"/ws/runs/{run.id}/", token=alice.token)
        await comm.connect()
        await comm.send_to(bytes_data=b"\x00\x01")
        assert await close_code(comm) == 4400

    run_ws(scenario)


# --- what they receive ----------------------------------------------------------------------


def test_catch_up_sends_exactly_the_events_after_since(alice):
    run = waiting_review(alice)

    async def scenario():
        comm = connect_to(f"/ws/runs/{run.id}/?since=2", token=alice.token)
        await comm.connect()
        frames = await receive_frames(comm, 2)
        assert [(f["seq"], f["type"]) for f in frames] == [(3, "progress"), (4, "run.waiting")]
        assert frames[0]["data"] == {"pct": 50}
        assert frames[1]["run"] == str(run.id)
        assert frames[1]["data"]["event_id"] == "decision-a"
        assert frames[1]["data"]["kind"] == "event"
        assert set(frames[1]) == {"type", "seq", "run", "data", "ts"}
        assert await comm.receive_nothing(timeout=0.6)
        await comm.disconnect()

    run_ws(scenario)


def test_live_events_follow_the_catch_up_in_order_without_duplicates(alice):
    run = waiting_review(alice)

    async def scenario():
        comm = connect_to(f"/ws/runs/{run.id}/?since=0", token=alice.token)
        await comm.connect()
        caught_up = await receive_frames(comm, 4)
        await decide("a", {"approved": True})
        live = await receive_frames(comm, 4)
        frames = caught_up + live
        assert [f["seq"] for f in frames] == [1, 2, 3, 4, 5, 6, 7, 8]
        assert [f["type"] for f in frames] == REVIEW_EVENTS
        assert live[-1]["data"]["status"] == "completed"
        assert await comm.receive_nothing(timeout=0.8)
        await comm.disconnect()

    run_ws(scenario)


def test_since_may_come_as_the_first_message_and_nothing_is_sent_before_it(alice):
    run = waiting_review(alice)

    async def scenario():
        comm = connect_to(f"/ws/runs/{run.id}/", token=alice.token)
        await comm.connect()
        await decide("a", {"approved": False})  # events 5-8 commit before the client says
        assert await comm.receive_nothing(timeout=0.6)
        await comm.send_json_to({"since": 3})
        frames = await receive_frames(comm, 5)
        assert [f["seq"] for f in frames] == [4, 5, 6, 7, 8]
        await comm.send_json_to({"since": 0})  # the stream has its position: ignored
        await comm.send_json_to({"type": "ping"})
        assert (await comm.receive_json_from(timeout=3))["type"] == "pong"
        await comm.disconnect()

    run_ws(scenario)


def test_a_gap_in_live_delivery_is_read_back_from_the_database(alice, settings):
    # The relay forwards nothing during the test (it sleeps 30 s), so events 5 to 7 never
    # reach the layer, as if it had dropped them; only event 8 is delivered.
    settings.HITL_REALTIME_DELIVERY = "relay"
    settings.HITL_REALTIME_RELAY_INTERVAL = 30
    run = waiting_review(alice)

    async def scenario():
        comm = connect_to(f"/ws/runs/{run.id}/?since=0", token=alice.token)
        await comm.connect()
        await receive_frames(comm, 4)
        await decide("a", {"approved": True})
        last = (await database_sync_to_async(run_events_after)(run.id, 7))[0]
        await get_channel_layer().group_send(run_group(run.id), group_message(last))
        frames = await receive_frames(comm, 4)
        assert [f["seq"] for f in frames] == [5, 6, 7, 8]
        assert await comm.receive_nothing(timeout=0.5)
        await comm.disconnect()

    run_ws(scenario)


def test_events_sent_to_the_group_together_arrive_as_frames_in_order(alice, settings):
    """A decision commits several events of one run at once; the publisher sends them to the
    run's group as one message, and the client still gets one frame per event, in order."""
    settings.HITL_REALTIME_DELIVERY = "relay"
    settings.HITL_REALTIME_RELAY_INTERVAL = 30  # only this test's forward() delivers
    run = waiting_review(alice)

    async def scenario():
        comm = connect_to(f"/ws/runs/{run.id}/?since=4", token=alice.token)
        await comm.connect()
        await decide("a", {"approved": True})
        rows = await database_sync_to_async(run_events_after)(run.id, 4)
        await forward(get_channel_layer(), rows)
        frames = await receive_events(comm, 4)
        assert [(f["seq"], f["type"]) for f in frames] == [
            (5, "event.received"),
            (6, "step.finished"),  # the wait's step
            (7, "step.finished"),
            (8, "run.finished"),
        ]
        assert await comm.receive_nothing(timeout=0.5)
        await comm.disconnect()

    run_ws(scenario)


def test_two_clients_of_one_run_each_get_every_event_once(alice, operator):
    run = waiting_review(alice)

    async def scenario():
        first = connect_to(f"/ws/runs/{run.id}/?since=4", token=alice.token)
        second = connect_to(f"/ws/runs/{run.id}/?since=1", token=operator.token)
        await first.connect()
        await second.connect()
        await decide("a", {"approved": True})
        assert [f["seq"] for f in await receive_events(first, 3)] == [5, 6, 7]
        assert [f["seq"] for f in await receive_events(second, 6)] == [2, 3, 4, 5, 6, 7]
        await first.disconnect()
        await second.disconnect()

    run_ws(scenario)


# --- presence -------------------------------------------------------------------------------


async def connected(ws) -> None:
    """Connect and wait until the server has finished connect() (joined, announced): the pong
    to a ping comes after it, since a consumer handles one message at a time."""
    await ws.connect()
    await ws.send_json_to({"type": "ping"})
    assert (await ws.receive_json_from(timeout=3))["type"] == "pong"


def test_viewers_see_who_else_has_the_run_open_until_they_leave(alice, operator):
    run = waiting_review(alice)
    operator.first_name, operator.last_name = "Olivia", "Ops"
    operator.save()
    watcher = make_user("dash", staff=True, manage_any=True)

    async def scenario():
        # A dashboard watches without being shown (no ?presence=1) but sees who reviews.
        dash_ws = connect_to(f"/ws/runs/{run.id}/", token=watcher.token)
        await connected(dash_ws)
        alice_ws = connect_to(f"/ws/runs/{run.id}/?presence=1", token=alice.token)
        await connected(alice_ws)
        olivia_ws = connect_to(f"/ws/runs/{run.id}/?presence=1", token=operator.token)
        await connected(olivia_ws)
        # Alice is told Olivia arrived; Olivia is told Alice was already there.
        to_alice = await alice_ws.receive_json_from(timeout=3)
        to_olivia = await olivia_ws.receive_json_from(timeout=3)
        assert (to_alice["type"], to_alice["data"]["user"]["name"]) == (
            "presence.join",
            "Olivia Ops",
        )
        assert (to_olivia["type"], to_olivia["data"]["user"]["username"]) == (
            "presence.join",
            "alice",
        )
        assert to_alice["seq"] is None and to_alice["run"] == str(run.id)
        assert "specific" not in to_alice["data"]["conn"]  # channel names stay server-side
        seen_by_dash = [await dash_ws.receive_json_from(timeout=3) for _ in range(2)]
        assert [f["data"]["user"]["username"] for f in seen_by_dash] == ["alice", "olivia"]
        await olivia_ws.disconnect()
        left = await alice_ws.receive_json_from(timeout=3)
        assert (left["type"], left["data"]["conn"]) == ("presence.leave", to_alice["data"]["conn"])
        assert (await dash_ws.receive_json_from(timeout=3))["type"] == "presence.leave"
        # Nobody was told about the dashboard.
        assert await alice_ws.receive_nothing(timeout=0.5)
        await alice_ws.disconnect()
        await dash_ws.disconnect()

    run_ws(scenario)


def test_a_viewer_heard_both_ways_is_announced_once(alice):
    """Two viewers connecting at the same moment can each receive the other's announcement and
    its reply to their own; the client is told once, and told again after a leave."""
    run = waiting_review(alice)
    bob = {"conn": "specific.other!1", "user": {"id": 99, "username": "bob", "name": "Bob"}}

    async def scenario():
        ws = connect_to(f"/ws/runs/{run.id}/?presence=1", token=alice.token)
        await connected(ws)
        layer = get_channel_layer()
        await layer.group_send(run_group(run.id), {"type": "presence.join", **bob})
        await layer.group_send(run_group(run.id), {"type": "presence.here", **bob})
        told = await ws.receive_json_from(timeout=3)
        assert (told["type"], told["data"]["user"]["username"]) == ("presence.join", "bob")
        assert await ws.receive_nothing(timeout=0.5)
        await layer.group_send(run_group(run.id), {"type": "presence.leave", **bob})
        assert (await ws.receive_json_from(timeout=3))["type"] == "presence.leave"
        await layer.group_send(run_group(run.id), {"type": "presence.here", **bob})
        assert (await ws.receive_json_from(timeout=3))["type"] == "presence.join"
        await ws.disconnect()

    run_ws(scenario)
