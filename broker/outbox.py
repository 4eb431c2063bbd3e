"""The LC's upstream outbox in Redis: persist first, publish in order, re-send until acknowledged.

An upstream message is written to Redis (with its per-node sequence number) before it is
published; a sender thread publishes pending messages in sequence order and re-sends one the
GM has not acknowledged after ``resend_after`` seconds when it looks lost (the GM acknowledged
nothing meanwhile, or acknowledged a later one); an `Ack` on the node's ``ack`` topic removes
them. Pending messages survive an LC restart (the new sender publishes them at once), a
broker crash (the broker's queue is lost, the outbox is not) and a Redis restart (append-only
persistence; every Redis call waits for it to come back).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import redis
from pydantic import BaseModel, ConfigDict, Field

from broker.client import BusClient, BusClosed, BusMessage
from broker.envelope import Ack, Envelope, MalformedMessage, new_message_id, utcnow
from broker.store import retry_redis
from broker.topics import UpTopic, ack_topic, validate_node

__all__ = ["Outbox", "OutboxSettings", "OutboxStats"]

log = logging.getLogger(__name__)


# Numbers and stores a group of messages atomically. KEYS: seq counter, entries hash, order
# sorted set; ARGV: how many, then per message its id and its entry's JSON before and after
# the seq. Returns the first seq.
_STORE = """
local n = tonumber(ARGV[1])
local last = redis.call('INCRBY', KEYS[1], n)
local first = last - n + 1
for i = 0, n - 1 do
  local id = ARGV[2 + 3 * i]
  local seq = first + i
  redis.call('HSET', KEYS[2], id, ARGV[3 + 3 * i] .. string.format('%d', seq) .. ARGV[4 + 3 * i])
  redis.call('ZADD', KEYS[3], seq, id)
end
return first
"""
_SEQ_FIELD = '"seq":0,'


class OutboxSettings(BaseModel):
    """Timing and limits of the outbox."""

    model_config = ConfigDict(frozen=True)

    resend_after: float = Field(default=10.0, gt=0, description="seconds without an ack")
    window: int = Field(default=500, ge=1, description="oldest pending messages in flight")
    poll_interval: float = Field(default=1.0, gt=0, description="longest sleep of the sender")
    put_timeout: float | None = Field(
        default=30.0, description="seconds `put` waits for Redis (None: for ever)"
    )
    key_prefix: str = "sedna:lc"


@dataclass
class OutboxStats:
    """Counters of one outbox since it started (for metrics and tests)."""

    sent: int = 0
    resent: int = 0
    broker_acked: int = 0
    acked: int = 0
    rounds: int = 0  # passes of the sender over its window
    puts: int = 0  # messages stored
    commits: int = 0  # Redis commits that stored them (group commit: fewer than puts)


class _Entry(BaseModel):
    """What the outbox stores per message: where it goes and what it is."""

    model_config = ConfigDict(frozen=True)

    topic: str
    envelope: Envelope


@dataclass
class _Put:
    """One caller's message waiting for the group commit, and its outcome."""

    topic: str
    payload: dict[str, Any]
    envelope: Envelope | None = None
    error: BaseException | None = None
    finished: bool = False


@dataclass
class _Flight:
    """A pending message in the sender's window and when it was last published."""

    topic: str
    envelope: Envelope
    wire: bytes  # the envelope as published
    sent: float | None = None
    order: int = 0  # when it was last published, counted in publishes
    acked: bool = False


class Outbox:
    """Durable, ordered, acknowledged upstream delivery for one node.

    One outbox per node at a time: the sender keeps the oldest ``window`` pending messages in
    memory. A put that follows them and fits goes into that window as it is stored, so the
    sender publishes it without reading it back; Redis is read only for what did not fit, and
    at start for what an earlier outbox left pending.
    """

    def __init__(
        self,
        node: str,
        store: redis.Redis,
        bus: BusClient,
        settings: OutboxSettings | None = None,
    ) -> None:
        self.node = validate_node(node)
        self.settings = settings or OutboxSettings()
        self._redis = store
        self._bus = bus
        base = f"{self.settings.key_prefix}:{node}:outbox"
        self._seq_key = f"{base}:seq"
        self._order_key = f"{base}:order"  # sorted set: id scored by seq
        self._entries_key = f"{base}:entries"  # hash: id -> _Entry JSON
        self._put_lock = threading.Lock()  # held by the caller committing the queued puts
        self._queue_lock = threading.Lock()
        self._queued: list[_Put] = []  # puts waiting for the next group commit
        self._store_script = store.register_script(_STORE)
        self._window_lock = threading.Lock()
        self._window: dict[str, _Flight] = {}  # insertion order == seq order
        self._fresh: list[_Flight] = []  # in the window, never published yet (seq order)
        self._published_order: deque[_Flight] = deque()  # published, oldest publish first
        self._loaded_seq = 0
        # Puts not admitted to the window (plus one: Redis may hold pending messages of an
        # earlier outbox) and how many of them a read of Redis has caught up with: equal, and
        # the window holds every pending message it has room for, so the sender reads nothing.
        self._unadmitted = 1
        self._read_upto = 0
        self._published = 0  # publishes so far, to order them
        self._acked_order = 0  # the latest publish the GM acknowledged
        self._last_ack = time.monotonic()
        self._resend_all = False  # a new GM asked for every unacknowledged message again
        self._stats_lock = threading.Lock()
        self._stats = OutboxStats()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._sender = threading.Thread(target=self._run, name=f"outbox-{node}", daemon=True)

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Listen for acks on the node's ack topic and start sending."""
        self._bus.subscribe(ack_topic(self.node), self._on_ack_message)
        self._sender.start()

    def close(self, timeout: float = 5.0) -> None:
        """Stop the sender; pending messages stay in Redis for the next start."""
        self._stop.set()
        self._wake.set()
        if self._sender.is_alive():
            self._sender.join(timeout)

    # -- API -------------------------------------------------------------------------------

    def put(self, kind: str, namespace: str, name: str, payload: dict[str, Any]) -> Envelope:
        """Persist an upstream message about one resource, then let the sender publish it.

        Returns the envelope (with its id and sequence number) once it is in Redis. Concurrent
        callers share one commit (group commit: the first waiting caller writes every message
        queued meanwhile, in one round trip). Raises `StoreUnavailable` if Redis does not answer
        within ``put_timeout``; nothing is published then.
        """
        request = _Put(str(UpTopic(self.node, kind, namespace, name)), payload)
        with self._queue_lock:
            self._queued.append(request)
        with self._put_lock:  # seq order == storage order, so the window is exact
            if not request.finished:
                with self._queue_lock:
                    batch, self._queued = self._queued, []
                self._commit(batch)
        if request.error is not None:
            raise request.error
        assert request.envelope is not None
        log.debug(
            "outbox put",
            extra={"node": self.node, "id": request.envelope.id, "seq": request.envelope.seq},
        )
        return request.envelope

    def _commit(self, batch: list[_Put]) -> None:
        """Number and store ``batch`` in one Redis command (the caller holds the put lock);
        hand it to the sender's window and wake the sender."""
        timeout = self.settings.put_timeout
        envelopes = [
            # Built from trusted parts (the node is validated once, the id is fresh).
            Envelope.model_construct(
                id=new_message_id(), seq=0, node=self.node, sent_at=utcnow(), payload=r.payload
            )
            for r in batch
        ]
        args: list[str | int] = [len(batch)]
        wires: list[tuple[str, str]] = []  # each envelope's JSON before and after its seq
        for request, envelope in zip(batch, envelopes, strict=True):
            raw = envelope.model_dump_json(by_alias=True)
            cut = raw.index(_SEQ_FIELD) + len(_SEQ_FIELD) - 2  # just after '"seq":'
            before, after = raw[:cut], raw[cut + 1 :]
            wires.append((before, after))
            # The stored JSON is the `_Entry` around the envelope.
            args += [
                envelope.id,
                f'{{"topic":{json.dumps(request.topic)},"envelope":{before}',
                f"{after}}}",
            ]
        keys = [self._seq_key, self._entries_key, self._order_key]
        try:
            # A retry after a lost reply numbers the same ids again: each is stored once.
            first = int(
                retry_redis(
                    lambda: self._store_script(keys=keys, args=args),
                    what="outbox put",
                    timeout=timeout,
                    stop=self._stop,
                )
            )
        except Exception as exc:  # StoreUnavailable: every caller of the batch gets it
            for request in batch:
                request.error = exc
        else:
            flights = []
            for offset, (request, envelope, (before, after)) in enumerate(
                zip(batch, envelopes, wires, strict=True)
            ):
                seq = first + offset
                request.envelope = envelope.model_copy(update={"seq": seq})
                wire = f"{before}{seq}{after}".encode()
                flights.append(_Flight(request.topic, request.envelope, wire))
            self._admit(flights, first)
            self._count("puts", len(batch))
            self._count("commits")
            self._wake.set()
        finally:
            for request in batch:
                request.finished = True

    def _admit(self, flights: list[_Flight], first: int) -> None:
        """Put just stored messages into the sender's window without reading them back, if
        they follow what it holds and fit; else the sender reads them from Redis later."""
        with self._window_lock:
            if self._loaded_seq != first - 1 or (
                len(self._window) + len(flights) > self.settings.window
            ):
                self._unadmitted += 1
                return
            for flight in flights:
                self._window[flight.envelope.id] = flight
            self._fresh.extend(flights)
            self._loaded_seq = first + len(flights) - 1

    def ack(self, ids: Iterable[str]) -> int:
        """Remove acknowledged messages; return how many were pending."""
        ids = list(ids)
        if not ids:
            return 0

        def remove() -> int:
            pipe = self._redis.pipeline(transaction=True)
            pipe.zrem(self._order_key, *ids)
            pipe.hdel(self._entries_key, *ids)
            return int(pipe.execute()[0])

        removed = retry_redis(remove, what="outbox ack", stop=self._stop)
        self._count("acked", removed)
        with self._window_lock:
            was_full = len(self._window) >= self.settings.window
            for message_id in ids:
                flight = self._window.pop(message_id, None)
                if flight is not None:
                    flight.acked = True
                    self._acked_order = max(self._acked_order, flight.order)
                    self._last_ack = time.monotonic()
        if was_full:  # room for messages waiting behind the window
            self._wake.set()
        return removed

    def stats(self) -> OutboxStats:
        """A snapshot of the counters."""
        with self._stats_lock:
            return OutboxStats(**vars(self._stats))

    def _count(self, field: str, n: int = 1) -> None:
        with self._stats_lock:
            setattr(self._stats, field, getattr(self._stats, field) + n)

    def pending(self, limit: int | None = None) -> list[Envelope]:
        """Pending (unacknowledged) envelopes in sequence order."""
        return [entry.envelope for entry in self._load(limit)]

    def pending_count(self) -> int:
        """How many messages wait for an acknowledgement."""
        return int(retry_redis(lambda: self._redis.zcard(self._order_key), what="outbox count"))

    # -- internals -------------------------------------------------------------------------

    def _load(self, limit: int | None) -> list[_Entry]:
        end = -1 if limit is None else limit - 1

        def read() -> list[_Entry]:
            ids = self._redis.zrange(self._order_key, 0, end)
            if not ids:
                return []
            raws = self._redis.hmget(self._entries_key, ids)
            return [_Entry.model_validate_json(raw) for raw in raws if raw is not None]

        return retry_redis(read, what="outbox read", stop=self._stop)

    def _on_ack_message(self, message: BusMessage) -> None:
        try:
            ack = Ack.from_bytes(message.payload)
        except MalformedMessage as err:
            log.warning("ignoring malformed ack", extra={"topic": message.topic, "error": str(err)})
            return
        self.ack(ack.ids)
        if ack.resend:
            self.resend_unacked()

    def resend_unacked(self) -> None:
        """Send every published message not acknowledged yet again now (a new GM started:
        what the old one held is lost), without waiting ``resend_after``."""
        with self._window_lock:
            self._resend_all = True
        self._wake.set()

    def _on_published(self, flight: _Flight) -> Callable[[Future[None]], None]:
        def done(future: Future[None]) -> None:
            error = future.exception()
            if error is None:
                self._count("broker_acked")
            elif not isinstance(error, BusClosed):
                log.warning(
                    "upstream publish failed; will re-send",
                    extra={"topic": flight.topic, "id": flight.envelope.id, "error": str(error)},
                )

        return done

    def _run(self) -> None:
        while not self._stop.is_set():
            self._count("rounds")
            try:
                delay = self._send_due()
            except Exception:  # never let one bad round kill the sender
                log.exception("outbox sender round failed", extra={"node": self.node})
                delay = self.settings.poll_interval
            self._wake.wait(delay)
            self._wake.clear()

    def _fill_window(self) -> None:
        """Read pending messages newer than those in the window, up to its size, unless every
        put since the last complete read went into the window at once."""
        with self._window_lock:
            room = self.settings.window - len(self._window)
            after = self._loaded_seq
            unadmitted = self._unadmitted
        if room <= 0 or unadmitted == self._read_upto:
            return

        def read() -> tuple[list[_Entry], int, int]:
            found = self._redis.zrangebyscore(
                self._order_key, f"({after}", "+inf", start=0, num=room, withscores=True
            )
            if not found:
                return [], after, 0
            raws = self._redis.hmget(self._entries_key, [i for i, _ in found])
            entries = [_Entry.model_validate_json(raw) for raw in raws if raw is not None]
            return entries, int(found[-1][1]), len(found)

        entries, last_seq, found = retry_redis(read, what="outbox read", stop=self._stop)
        with self._window_lock:
            if found < room:  # all there was: what was not admitted before the read is in
                self._read_upto = unadmitted
            for entry in entries:
                # Up to ``_loaded_seq`` every message came into the window once (a put may
                # have admitted some meanwhile): one acknowledged since must not come back.
                if entry.envelope.seq > self._loaded_seq and entry.envelope.id not in self._window:
                    flight = _Flight(entry.topic, entry.envelope, entry.envelope.to_bytes())
                    self._window[entry.envelope.id] = flight
                    self._fresh.append(flight)
            self._loaded_seq = max(self._loaded_seq, last_seq)

    def _send_due(self) -> float:
        """Publish what is due; return how long to sleep before the next round.

        Looks only at the messages never published and at the oldest publishes that are due
        for a look (published ``resend_after`` ago), not at the whole window: a round costs
        what it sends, however many messages wait for their ack.
        """
        if not self._bus.connected.is_set():
            # paho holds what was already handed to it; new sends wait for the connection.
            self._bus.wait_connected(self.settings.poll_interval)
            return 0.0 if self._bus.connected.is_set() else self.settings.poll_interval
        self._fill_window()
        now = time.monotonic()
        resend_after = self.settings.resend_after
        next_due = now + self.settings.poll_interval
        lost: list[_Flight] = []
        with self._window_lock:
            stalled = now - self._last_ack >= resend_after
            acked_order = self._acked_order
            published = self._published_order
            if self._resend_all:
                self._resend_all = False
                lost += [f for f in published if not f.acked]
                published.clear()
            while published:
                flight = published[0]
                if flight.acked:
                    published.popleft()
                    continue
                assert flight.sent is not None
                if now - flight.sent < resend_after:
                    next_due = min(next_due, flight.sent + resend_after)
                    break
                if not self._lost(flight, now, stalled, acked_order):
                    # Overdue but not lost (the GM is busy): look again later, never spin.
                    # Every later publish has a later order, so none of them is lost either.
                    break
                lost.append(published.popleft())
            fresh, self._fresh = self._fresh, []
        for flight in lost + fresh:
            if flight.acked:
                continue
            envelope = flight.envelope
            self._count("sent")
            if flight.sent is not None:
                self._count("resent")
                log.info(
                    "re-sending unacknowledged message",
                    extra={"node": self.node, "id": envelope.id, "seq": envelope.seq},
                )
            future = self._bus.publish_async(flight.topic, flight.wire)
            future.add_done_callback(self._on_published(flight))
            with self._window_lock:
                flight.sent = now
                self._published += 1
                flight.order = self._published
                published.append(flight)
            next_due = min(next_due, now + resend_after)
        return max(0.0, next_due - time.monotonic())

    def _lost(self, flight: _Flight, now: float, stalled: bool, acked_order: int) -> bool:
        """Whether a published message looks lost and should go out again.

        Only after ``resend_after`` seconds, and only if the GM acknowledged nothing meanwhile
        (it is away, or the broker lost the queue) or acknowledged a message published after
        this one (the GM applies a node's messages in order, so this one went missing). A GM
        that is merely busy working through a backlog is not flooded with copies.
        """
        assert flight.sent is not None
        if now - flight.sent < self.settings.resend_after:
            return False
        return stalled or flight.order < acked_order
