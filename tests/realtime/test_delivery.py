"""Delivery after commit: publishing never hurts the committing code, and the embedded relay
carries events committed by other connections (other processes) to this process's sockets."""

import asyncio
import logging
import socket
import threading
import time

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import connection, transaction

from realtime.delivery import publisher
from realtime.groups import run_group
from realtime.relay import OutboxRelay
from workflows import notify, start
from workflows.models import RunStatus
from workflows.outbox import record_event
from workflows.testing import run_until_idle

from ..conftest import requires_postgres
from .conftest import connect_to, run_ws
from .processes import RedisServer, redis_server

pytestmark = pytest.mark.django_db(transaction=True)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def join_run_group(run_id) -> str:
    """A new channel of the default layer in the run's group, as a consumer's would be."""

    async def join():
        layer = get_channel_layer()
        channel = await layer.new_channel()
        await layer.group_add(run_group(run_id), channel)
        return channel

    return async_to_sync(join)()


def test_a_channel_layer_that_is_down_never_breaks_or_stalls_the_committing_code(
    alice, settings, caplog
):
    settings.HITL_REALTIME_DELIVERY = "publish"
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [f"redis://127.0.0.1:{closed_port()}/0"]},
        }
    }
    settings.HITL_REALTIME_PUBLISH_TIMEOUT = 1.0
    caplog.set_level(logging.WARNING, logger="realtime")
    began = time.monotonic()
    run = start("rt-review", {"order_id": 1, "tag": "down"}, created_by=alice)
    run_until_idle()
    notify("decision-down", {"approved": True})
    run_until_idle()
    elapsed = time.monotonic() - began

    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED
    assert run.events.count() == 8
    # Eight events and no commit waited for the dead layer (1 s of publish timeout each).
    assert elapsed < 1.5
    assert publisher().backlog == 8  # kept, in order, for when the layer is back
    deadline = time.monotonic() + 5
    while "Publishing run events failed" not in caplog.text and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "Publishing run events failed" in caplog.text


def test_embedded_relay_forwards_events_committed_by_another_connection(alice, settings):
    settings.HITL_REALTIME_DELIVERY = "relay"
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    run = start("rt-review", {"order_id": 1, "tag": "relay"}, created_by=alice)
    run_until_idle()

    def decide_elsewhere():
        # Its own thread is its own database connection, like a worker process.
        try:
            notify("decision-relay", {"approved": True})
            run_until_idle()
        finally:
            connection.close()

    async def scenario():
        ws = connect_to(f"/ws/runs/{run.id}/?since=4", token=alice.token)
        await ws.connect()
        worker = threading.Thread(target=decide_elsewhere)
        worker.start()
        frames = [await ws.receive_json_from(timeout=5) for _ in range(4)]
        await asyncio.to_thread(worker.join)
        assert [(f["seq"], f["type"]) for f in frames] == [
            (5, "event.received"),
            (6, "step.finished"),  # the wait's step
            (7, "step.finished"),
            (8, "run.finished"),
        ]
        await ws.disconnect()

    run_ws(scenario)


@requires_postgres
def test_relay_picks_up_an_id_that_committed_after_a_higher_one(alice):
    """PostgreSQL hands out ids at insert: id N may commit after N+1 was already read."""
    slow = start("rt-review", {"order_id": 1, "tag": "slow"}, created_by=alice)
    fast = start("rt-review", {"order_id": 2, "tag": "fast"}, created_by=alice)
    relay = OutboxRelay()
    relay._start()
    inserted, release = threading.Event(), threading.Event()

    def slow_transaction():
        try:
            with transaction.atomic():
                record_event(slow.id, "progress", {"pct": 1})
                inserted.set()
                release.wait(10)
        finally:
            connection.close()

    worker = threading.Thread(target=slow_transaction)
    worker.start()
    assert inserted.wait(10)
    with transaction.atomic():
        record_event(fast.id, "progress", {"pct": 2})
    first = relay._poll()
    assert [r["run_id"] for r in first] == [fast.id]
    release.set()
    worker.join()
    second = relay._poll()
    assert [(r["run_id"], r["data"]) for r in second] == [(slow.id, {"pct": 1})]
    assert relay._poll() == []


@pytest.mark.skipif(redis_server is None, reason="redis-server is not installed")
def test_events_committed_while_redis_is_down_are_published_in_order_once_it_is_back(
    alice, settings, tmp_path
):
    redis = RedisServer(tmp_path, persist=True)
    settings.HITL_REALTIME_DELIVERY = "publish"
    settings.HITL_REALTIME_PUBLISH_RETRY = 0.5
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [{"address": redis.url, "socket_timeout": 15}]},
        }
    }
    try:
        redis.start()
        run = start("rt-review", {"order_id": 1, "tag": "later"}, created_by=alice)
        assert publisher().flush(5)  # run.started is out before anyone listens

        channel = join_run_group(run.id)
        redis.stop()
        run_until_idle()  # three events commit; each publish fails or queues behind the first
        assert publisher().backlog == 3
        redis.start()  # persisted: the group still has our channel

        async def receive():
            layer = get_channel_layer()
            events = []
            while len(events) < 3:
                message = await asyncio.wait_for(layer.receive(channel), 15)
                # Events queued together for one group travel in one message, in order.
                events += message["events"] if message["type"] == "run.events" else [message]
            return events

        received = async_to_sync(receive)()
        assert [m["event"]["seq"] for m in received] == [2, 3, 4]
        assert received[-1]["event"]["type"] == "run.waiting"
        # The sender drops what it sent once the publish call returns, which can be just after
        # the listener already has the messages: wait for that, briefly.
        assert publisher().flush(5) and publisher().backlog == 0
    finally:
        redis.stop()


def _publish_and_exit(rows: list) -> None:
    # A django-q2 worker's last task: commit, queue the publish, return (the process ends).
    publisher().publish(rows)


@pytest.mark.skipif(redis_server is None, reason="redis-server is not installed")
def test_a_worker_process_ending_right_after_its_commit_still_publishes(settings, tmp_path):
    import multiprocessing
    import uuid

    from django.utils import timezone

    redis = RedisServer(tmp_path)
    settings.HITL_REALTIME_DELIVERY = "publish"
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [{"address": redis.url, "socket_timeout": 15}]},
        }
    }
    run_id = uuid.uuid4()
    row = {
        "id": 1,
        "run_id": run_id,
        "seq": 7,
        "type": "run.finished",
        "data": {"status": "completed"},
        "created_at": timezone.now(),
    }
    try:
        redis.start()

        channel = join_run_group(run_id)
        # Like a django-q2 worker recycled after its last task: a forked child that returns.
        child = multiprocessing.get_context("fork").Process(target=_publish_and_exit, args=([row],))
        child.start()
        child.join(10)
        assert child.exitcode == 0

        async def receive():
            return await asyncio.wait_for(get_channel_layer().receive(channel), 5)

        message = async_to_sync(receive)()
        assert (message["event"]["seq"], message["event"]["type"]) == (7, "run.finished")
    finally:
        redis.stop()


@pytest.mark.skipif(redis_server is None, reason="redis-server is not installed")
def test_forward_reaches_every_listened_group_on_every_shard_and_no_one_else(tmp_path):
    """Publishing skips the groups nobody is in (one pipelined check per shard instead of a
    member read per group): every listener on either of two shards still gets its run's
    events, in order, and a listener that left gets nothing."""
    import uuid

    from channels_redis.core import RedisChannelLayer
    from django.utils import timezone

    from realtime.delivery import forward

    redis = RedisServer(tmp_path)
    try:
        redis.start()
        base = f"redis://127.0.0.1:{redis.port}"
        layer = RedisChannelLayer(hosts=[f"{base}/0", f"{base}/1"])
        # Runs whose groups fall on each shard: two listened and one not, on each.
        by_shard: dict[int, list] = {0: [], 1: []}
        while min(len(runs) for runs in by_shard.values()) < 3:
            run_id = uuid.uuid4()
            shard = by_shard[layer.consistent_hash(run_group(run_id))]
            if len(shard) < 3:
                shard.append(run_id)
        listened = by_shard[0][:2] + by_shard[1][:2]
        quiet = [by_shard[0][2], by_shard[1][2]]
        now = timezone.now()
        rows = [
            {
                "id": n,
                "run_id": run_id,
                "seq": seq,
                "type": "step.finished",
                "data": {},
                "created_at": now,
            }
            for n, (run_id, seq) in enumerate(
                (run_id, seq) for seq in (2, 3) for run_id in listened + quiet
            )
        ]

        async def scenario():
            channels = {}
            for run_id in [*listened, quiet[0]]:
                channels[run_id] = await layer.new_channel()
                await layer.group_add(run_group(run_id), channels[run_id])
            # quiet[0] had a listener that left: its group is gone, like a never-watched one.
            await layer.group_discard(run_group(quiet[0]), channels[quiet[0]])
            await forward(layer, rows)
            received = {}
            for run_id in listened:
                message = await asyncio.wait_for(layer.receive(channels[run_id]), 5)
                received[run_id] = [
                    (m["event"]["run"], m["event"]["seq"]) for m in message["events"]
                ]
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(layer.receive(channels[quiet[0]]), 0.5)
            await layer.flush()
            return received

        received = async_to_sync(scenario)()
        assert received == {run_id: [(str(run_id), 2), (str(run_id), 3)] for run_id in listened}
    finally:
        redis.stop()


@pytest.mark.skipif(redis_server is None, reason="redis-server is not installed")
def test_under_load_one_send_carries_several_commits_and_an_idle_publisher_sends_at_once(
    settings, tmp_path
):
    import uuid

    from django.utils import timezone

    redis = RedisServer(tmp_path)
    settings.HITL_REALTIME_DELIVERY = "publish"
    settings.HITL_REALTIME_PUBLISH_COALESCE = 0.3  # large, so the test can see it
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [{"address": redis.url, "socket_timeout": 15}]},
        }
    }
    run_id = uuid.uuid4()

    def row(seq: int) -> dict:
        return {
            "id": seq,
            "run_id": run_id,
            "seq": seq,
            "type": "step.finished",
            "data": {},
            "created_at": timezone.now(),
        }

    try:
        redis.start()

        channel = join_run_group(run_id)

        async def receive() -> tuple[list[int], float]:
            message = await asyncio.wait_for(get_channel_layer().receive(channel), 5)
            events = message["events"] if message["type"] == "run.events" else [message]
            return [m["event"]["seq"] for m in events], time.monotonic()

        sent = time.monotonic()
        publisher().publish([row(1)])
        first, first_at = async_to_sync(receive)()
        # Two commits right after a send: they wait out the rest of the window, then go
        # together as one message.
        publisher().publish([row(2)])
        time.sleep(0.05)
        publisher().publish([row(3)])
        second, second_at = async_to_sync(receive)()
        time.sleep(0.5)  # idle for longer than the window
        idle_sent = time.monotonic()
        publisher().publish([row(4)])
        third, third_at = async_to_sync(receive)()

        assert (first, second, third) == ([1], [2, 3], [4])
        assert first_at - sent < 0.25
        assert second_at - sent >= 0.3
        assert third_at - idle_sent < 0.25
    finally:
        redis.stop()


def _rows_for(run_ids: list) -> list[dict]:
    from django.utils import timezone

    return [
        {
            "id": n,
            "run_id": run_id,
            "seq": 2,
            "type": "step.finished",
            "data": {},
            "created_at": timezone.now(),
        }
        for n, run_id in enumerate(run_ids)
    ]


@pytest.mark.skipif(redis_server is None, reason="redis-server is not installed")
def test_events_nobody_listens_to_are_not_even_queued_on_either_shard(settings, tmp_path):
    """The committing thread asks Redis (one pipelined check per shard) which of its events'
    groups have members, and queues only those events; the listeners still get theirs."""
    import uuid
    from types import SimpleNamespace

    from channels_redis.core import RedisChannelLayer

    from realtime.delivery import on_events_committed, worth_publishing

    redis = RedisServer(tmp_path)
    base = f"redis://127.0.0.1:{redis.port}"
    settings.HITL_REALTIME_DELIVERY = "publish"
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [f"{base}/0", f"{base}/1"]},
        }
    }
    try:
        redis.start()
        layer = get_channel_layer()
        assert isinstance(layer, RedisChannelLayer)
        # A listened and a quiet run on each shard.
        by_shard: dict[int, list] = {0: [], 1: []}
        while min(len(runs) for runs in by_shard.values()) < 2:
            run_id = uuid.uuid4()
            shard = by_shard[layer.consistent_hash(run_group(run_id))]
            if len(shard) < 2:
                shard.append(run_id)
        listened = [by_shard[0][0], by_shard[1][0]]
        quiet = [by_shard[0][1], by_shard[1][1]]
        channels = {run_id: join_run_group(run_id) for run_id in listened}

        rows = _rows_for([quiet[0], listened[0], quiet[1], listened[1]])
        assert [row["run_id"] for row in worth_publishing(rows)] == listened

        # Through the signal's receiver, as after a commit: only the listened events queue.
        publisher().flush(5)
        queued: list = []
        original = publisher()._keep
        publisher()._keep = lambda batch: (queued.extend(batch), original(batch))[1]
        try:
            on_events_committed(
                None,
                event_ids=[row["id"] for row in rows],
                events=[SimpleNamespace(**row) for row in rows],
            )
        finally:
            publisher()._keep = original
        assert [row["run_id"] for row in queued] == listened

        async def receive(channel):
            return await asyncio.wait_for(get_channel_layer().receive(channel), 5)

        for run_id in listened:
            message = async_to_sync(receive)(channels[run_id])
            events = message["events"] if message["type"] == "run.events" else [message]
            assert [m["event"]["run"] for m in events] == [str(run_id)]
    finally:
        redis.stop()


@pytest.mark.skipif(redis_server is None, reason="redis-server is not installed")
def test_a_redis_that_hangs_costs_the_committing_code_one_short_wait_per_retry_period(
    settings, tmp_path
):
    """A Redis that accepts connections and never answers (here: stopped with SIGSTOP) must
    not hang a worker between two steps: the check gives up after HITL_REALTIME_CHECK_TIMEOUT,
    everything is queued for the publishing thread (which retries), and the check is skipped
    until HITL_REALTIME_PUBLISH_RETRY has passed."""
    import os
    import signal
    import uuid

    from realtime.delivery import worth_publishing

    redis = RedisServer(tmp_path)
    settings.HITL_REALTIME_DELIVERY = "publish"
    settings.HITL_REALTIME_CHECK_TIMEOUT = 0.2
    settings.HITL_REALTIME_PUBLISH_RETRY = 60.0
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [{"address": redis.url, "socket_timeout": 15}]},
        }
    }
    rows = _rows_for([uuid.uuid4(), uuid.uuid4()])
    try:
        redis.start()
        assert worth_publishing(rows) == []  # nobody listens, and Redis can tell
        os.kill(redis.proc.pid, signal.SIGSTOP)
        try:
            began = time.monotonic()
            assert worth_publishing(rows) == rows  # cannot tell: all of them
            first = time.monotonic() - began
            began = time.monotonic()
            assert worth_publishing(rows) == rows
            second = time.monotonic() - began
        finally:
            os.kill(redis.proc.pid, signal.SIGCONT)
        assert 0.15 <= first < 1.0
        assert second < 0.05  # not asked again within the retry period
    finally:
        redis.stop()
