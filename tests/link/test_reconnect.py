"""The reconnect policy (edge.link.reconnect): a failed connect moves to the next node at
once, the backoff runs only between rounds of all nodes, a lost link tries the next node
after a short jitter; a node that closes before its CONNACK is left at once; and a real
device link whose first node is dead reaches the second without a backoff's wait
(against Mosquitto)."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import aiomqtt
import pytest
from edge.link.client import BrokerConfig, LinkClient, closed_before_connack_fails
from edge.link.mosquitto import free_port
from edge.link.reconnect import HOP_S, STABLE_S, Reconnect
from hypothesis import given
from hypothesis import strategies as st

from tests.link.harness import running_broker


def test_a_failed_connect_moves_on_at_once_and_backs_off_per_round() -> None:
    r = Reconnect(3, 1.0, 8.0, rng=random.Random(1))
    assert r.endpoint == 0
    assert r.failed() <= HOP_S and r.endpoint == 1
    assert r.failed() <= HOP_S and r.endpoint == 2
    assert r.failed() >= 0.5 and r.endpoint == 0  # all three failed: the backoff
    assert r.failed() <= HOP_S and r.endpoint == 1


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_lost_link_moves_to_the_next_node_soon() -> None:
    """The node that dropped the link is left: it may be in lame duck or restarting (a
    restarting NATS node accepts TLS seconds before it answers a CONNECT)."""
    clock = Clock()
    r = Reconnect(3, 1.0, 8.0, rng=random.Random(2), clock=clock)
    r.failed()
    for endpoint in (2, 0):
        r.connected()
        clock.now += STABLE_S
        assert 0.5 <= r.lost() <= 1.0 and r.endpoint == endpoint


def test_a_flapping_link_backs_off() -> None:
    """Review of issue 20: a link that comes up and drops at once (a broker that closes
    it, a client id taken over) reconnected every 0.25-0.5 s for ever; now each short
    connection counts toward the backoff, and a stable one ends it."""
    clock = Clock()
    r = Reconnect(3, 0.5, 8.0, rng=random.Random(4), clock=clock)
    waits = []
    for _ in range(8):
        r.connected()
        clock.now += 1.0  # up one second
        waits.append(r.lost())
    assert waits[0] <= 0.5 and max(waits[4:]) > 2.0 and max(waits) <= 8.0
    r.connected()
    clock.now += STABLE_S
    assert r.lost() <= 0.5  # a stable connection ended: short again


def test_one_node_backs_off_after_every_failure() -> None:
    r = Reconnect(1, 1.0, 8.0, rng=random.Random(3))
    ceilings = [1.0, 2.0, 4.0, 8.0, 8.0]
    for ceiling in ceilings:
        assert 0.5 <= r.failed() <= ceiling and r.endpoint == 0
    r.connected()
    assert r.failed() <= 1.0


@pytest.mark.parametrize(
    ("nodes", "hop_s", "match"),
    [(0, 0.2, "at least one broker endpoint"), (3, 0.0, "hop_s"), (3, 9.0, "hop_s")],
)
def test_bad_parameters_are_named(nodes: int, hop_s: float, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Reconnect(nodes, 1.0, 8.0, hop_s=hop_s)


@given(
    nodes=st.integers(1, 6),
    events=st.lists(st.sampled_from(["failed", "lost", "connected"]), max_size=60),
    seed=st.integers(0, 2**32 - 1),
)
def test_every_delay_is_bounded_and_every_node_is_tried_each_round(
    nodes: int, events: list[str], seed: int
) -> None:
    clock = Clock()
    r = Reconnect(nodes, 0.5, 4.0, rng=random.Random(seed), clock=clock)
    in_a_row = 0  # failed connects since the last success or lost link
    up_since: float | None = None
    for i, event in enumerate(events):
        before = r.endpoint
        clock.now += 10.0 * (i % 4)  # connections of 0-30 s and more
        if event == "connected":
            r.connected()
            in_a_row = 0
            up_since = clock.now
        elif event == "lost":
            in_a_row = 0
            stable = up_since is not None and clock.now - up_since >= STABLE_S
            up_since = None
            delay = r.lost()
            assert r.endpoint == (before + 1) % nodes
            assert 0.25 <= delay <= (0.5 if stable else 4.0)
        else:
            delay = r.failed()
            up_since = None
            in_a_row += 1
            assert r.endpoint == (before + 1) % nodes  # the nodes in turn, each once a round
            if in_a_row % nodes:
                assert 0 < delay <= HOP_S  # the next node at once
            else:
                assert 0.25 <= delay <= 4.0  # a whole round failed: the backoff


def test_a_node_that_closes_before_its_connack_is_left_at_once() -> None:
    """A node going down (or stalled) closes a connection whose CONNECT it cannot answer;
    aiomqtt alone ignores that close and waits out its whole connect timeout (60 s here),
    the device link fails the connect at once and moves on."""

    async def main() -> float:
        async def close_after_connect(
            reader: asyncio.StreamReader, w: asyncio.StreamWriter
        ) -> None:
            await reader.read(1)  # the CONNECT has come
            w.close()

        server = await asyncio.start_server(close_after_connect, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        loop = asyncio.get_running_loop()
        client = closed_before_connack_fails(
            aiomqtt.Client("127.0.0.1", port, protocol=aiomqtt.ProtocolVersion.V311, timeout=60)
        )
        t0 = loop.time()
        with pytest.raises(aiomqtt.MqttError, match="closed before CONNACK"):
            await client.__aenter__()
        took = loop.time() - t0
        server.close()
        return took

    assert asyncio.run(main()) < 30


class _Quiet:
    def __init__(self) -> None:
        self.up = asyncio.Event()

    def birth(self) -> str:
        return '{"state":"online"}'

    async def on_message(
        self, leaf: str, payload: bytes, correlation: bytes | None, retained: bool
    ) -> None:
        return None

    def on_connected(self) -> None:
        self.up.set()

    def on_disconnected(self, reason: str) -> None:
        return None

    def on_outflow(self, device: str, payload: bytes) -> None:
        return None


def test_a_dead_first_node_costs_one_refused_connect(tmp_path: Path) -> None:
    """The first endpoint refuses (nothing listens); with a 30 s backoff the old loop
    waited at least 15 s before the second node, this one goes there at once."""
    with running_broker(tmp_path / "b") as broker:
        cfg = broker.client_config("dev-1")
        dead = ("127.0.0.1", free_port())
        cfg = BrokerConfig(
            *dead,
            cfg.cafile,
            cfg.certfile,
            cfg.keyfile,
            backoff_min_s=30.0,
            backoff_max_s=60.0,
            alternates=((cfg.host, cfg.port),),
        )

        async def main() -> None:
            handler = _Quiet()
            link = LinkClient("dev-1", cfg, handler, None, None)
            task = asyncio.create_task(link.run())
            try:
                await asyncio.wait_for(handler.up.wait(), 12)
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

        asyncio.run(main())
