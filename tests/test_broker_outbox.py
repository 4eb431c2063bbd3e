"""End-to-end upstream delivery: Redis outbox on the LC, de-duplication and acks on the GM.

Every test counts how often the GM applied each message: exactly once, whatever failed.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from broker.client import BusClient
from broker.dedup import Dedup
from broker.envelope import Ack
from broker.localservices import MosquittoService, RedisService
from broker.outbox import Outbox, OutboxSettings
from broker.store import connect_redis
from broker.topics import ack_topic
from broker.upstream import NothingToWrite, Upstream, UpstreamReceiver
from tests.services import wait_for

FAST = OutboxSettings(resend_after=0.5, poll_interval=0.1, put_timeout=None)


@dataclass
class Gm:
    """Counts applied upstream messages by their payload's ``i``."""

    applied: Counter[int] = field(default_factory=Counter)
    order: list[int] = field(default_factory=list)  # as applied
    lock: threading.Lock = field(default_factory=threading.Lock)
    delay: float = 0.0  # seconds per message: a busy GM
    batch_max: int = 500

    def apply(self, batch: list[Upstream]) -> NothingToWrite:
        time.sleep(self.delay * len(batch))

        def count() -> None:  # once the receiver committed the batch's marks
            with self.lock:
                for item in batch:
                    self.applied[item.envelope.payload["i"]] += 1
                    self.order.append(item.envelope.payload["i"])

        return NothingToWrite(count)

    def snapshot(self) -> Counter[int]:
        with self.lock:
            return Counter(self.applied)


@dataclass
class Bus:
    """An LC with its outbox and a GM with its receiver, on one broker and one Redis."""

    mosquitto: MosquittoService
    redis: RedisService
    node: str
    make_client: object
    gm: Gm = field(default_factory=Gm)
    outbox: Outbox | None = None
    lc_client: BusClient | None = None

    def start_lc(self, settings: OutboxSettings = FAST) -> Outbox:
        client: BusClient = self.make_client(
            f"lc-{self.node}", self.mosquitto.settings(), start=False
        )
        self.lc_client = client
        self.outbox = Outbox(self.node, connect_redis(self.redis.url), client, settings)
        self.outbox.start()
        client.start(wait=10)
        return self.outbox

    def stop_lc(self) -> None:
        assert self.outbox is not None and self.lc_client is not None
        self.outbox.close()
        self.lc_client.close()

    def start_gm(self) -> BusClient:
        client = self.make_client(f"gm-{self.node}", self.mosquitto.settings(), start=False)
        dedup = Dedup(connect_redis(self.redis.url), key_prefix=f"seen-{self.node}")
        UpstreamReceiver(client, dedup, self.gm.apply, batch_max=self.gm.batch_max).start()
        client.start(wait=10)
        return client

    def put(self, numbers: range) -> None:
        assert self.outbox is not None
        for i in numbers:
            self.outbox.put("Dataset", "default", "d", {"i": i})

    def assert_applied_once(self, numbers: range) -> None:
        assert self.outbox is not None
        wait_for(
            lambda: set(self.gm.snapshot()) >= set(numbers) and self.outbox.pending_count() == 0,
            timeout=20,
            what=f"messages {numbers} applied and acknowledged",
        )
        assert self.gm.snapshot() == Counter({i: 1 for i in numbers})


@pytest.fixture
def bus(mosquitto_service, redis_service, bus_client, unique_name) -> Iterator[Bus]:
    bus = Bus(mosquitto_service, redis_service, unique_name, bus_client)
    yield bus
    if bus.outbox is not None:
        bus.outbox.close()


def test_messages_sent_while_the_broker_is_frozen_arrive_once(bus: Bus) -> None:
    outbox = bus.start_lc()
    bus.start_gm()
    bus.put(range(5))
    bus.assert_applied_once(range(5))

    bus.mosquitto.freeze()
    try:
        bus.put(range(5, 25))
        wait_for(lambda: outbox.stats().resent >= 20, what="re-sends while frozen")
    finally:
        bus.mosquitto.thaw()
    bus.assert_applied_once(range(25))
    assert outbox.stats().acked == 25


def test_messages_queued_in_a_killed_broker_arrive_once(bus: Bus) -> None:
    gm = bus.start_gm()  # creates the GM's persistent session, then goes away
    gm.close()
    outbox = bus.start_lc()
    bus.put(range(10))
    wait_for(lambda: outbox.stats().broker_acked >= 10, what="the broker to hold 10 messages")

    bus.mosquitto.kill()  # SIGKILL: the broker forgets the GM's queue
    bus.mosquitto.restart()
    bus.start_gm()
    bus.put(range(10, 15))
    bus.assert_applied_once(range(15))
    assert outbox.stats().resent >= 10


def test_pending_messages_survive_an_lc_and_redis_restart(bus: Bus) -> None:
    bus.start_lc()
    bus.put(range(10))  # no GM yet: nothing is acknowledged
    bus.stop_lc()
    bus.redis.restart()

    outbox = bus.start_lc()
    assert [e.payload["i"] for e in outbox.pending()] == list(range(10))
    assert [e.seq for e in outbox.pending()] == list(range(1, 11))
    bus.start_gm()
    bus.assert_applied_once(range(10))


def test_put_waits_for_redis_to_come_back(bus: Bus) -> None:
    bus.start_gm()
    bus.start_lc()
    bus.put(range(2))
    bus.redis.stop()
    putter = threading.Thread(target=bus.put, args=(range(2, 5),))
    putter.start()
    putter.join(0.2)
    assert putter.is_alive(), "put returned although Redis is down"
    bus.redis.start()
    putter.join(10)
    assert not putter.is_alive()
    bus.assert_applied_once(range(5))


def test_messages_beyond_the_window_are_read_back_and_arrive_once_in_order(bus: Bus) -> None:
    """Puts that find the window full wait in Redis; the sender reads them as acks make room."""
    outbox = bus.start_lc(FAST.model_copy(update={"window": 3}))
    bus.put(range(10))  # no GM yet: three fill the window, seven wait in Redis
    assert [e.payload["i"] for e in outbox.pending()] == list(range(10))
    bus.start_gm()
    bus.assert_applied_once(range(10))
    assert bus.gm.order == list(range(10))
    bus.put(range(10, 15))  # the window has room again: puts go straight into it
    bus.assert_applied_once(range(15))
    assert bus.gm.order == list(range(15))


def test_a_busy_gm_working_through_a_backlog_gets_no_copies(bus: Bus) -> None:
    """Acks keep coming, only slowly: nothing looks lost, so nothing is re-sent."""
    bus.gm.delay = 0.1  # 20 messages take 2 s, four times the re-send delay
    bus.gm.batch_max = 1  # one ack per message: acks keep coming, each slowly
    outbox = bus.start_lc()
    bus.start_gm()
    started = time.monotonic()
    bus.put(range(20))
    bus.assert_applied_once(range(20))
    assert outbox.stats().resent == 0
    # Waiting for the GM must not spin: about one pass per ack or per poll interval.
    polls = (time.monotonic() - started) / FAST.poll_interval
    assert outbox.stats().rounds < 20 + 2 * polls + 10


def test_a_new_gm_asking_for_a_resend_gets_what_was_lost_at_once(bus: Bus) -> None:
    """Messages published while no GM listened are lost; the outbox alone would send them
    again only after ``resend_after`` (an hour here): a starting GM's ``Ack(resend=True)``
    brings every one of them, once."""
    bus.start_lc()
    assert bus.outbox is not None and bus.lc_client is not None
    bus.outbox.close()
    slow = OutboxSettings(resend_after=3600, poll_interval=0.1, put_timeout=None)
    outbox = bus.outbox = Outbox(bus.node, connect_redis(bus.redis.url), bus.lc_client, slow)
    outbox.start()
    bus.put(range(10))  # nobody subscribed: the broker drops them
    wait_for(lambda: outbox.stats().broker_acked >= 10, what="the broker to take 10 messages")

    gm = bus.start_gm()
    time.sleep(0.5)
    assert bus.gm.snapshot() == Counter(), "a lost message arrived without a resend"
    gm.publish(ack_topic(bus.node), Ack(resend=True))
    bus.assert_applied_once(range(10))
    assert outbox.stats().resent == 10
