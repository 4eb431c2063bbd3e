"""The GM's end of upstream delivery: decode, de-duplicate, apply once in batches, acknowledge.

Subscribes ``$share/gm/sedna/node/+/up/#``. The bus dispatcher only decodes each envelope and
queues it; appliers (``workers`` threads, each owning the objects whose topic hashes to it, so
one object's messages keep their order) take whatever has queued up, up to ``batch_max``, and:

1. drop the ids `Dedup` has seen applied (one Redis round trip for the batch) and copies within
   the batch;
2. hand the rest to ``apply``, which decodes, checks and coalesces them and returns an
   `Applied`: the durable writes it needs and what to do once they are durable;
3. commit those writes and the ids' "applied" marks in one Redis transaction (``MULTI/EXEC``),
   so a message is recorded and marked in the same step: a crash before the commit leaves
   neither (the LC re-sends, the copy is applied), a crash after leaves both (the copy is only
   acknowledged);
4. run the `Applied`'s ``done`` (memory, work queue), then publish one `Ack` per node naming every
   id of the batch, duplicates too (their earlier ack may have been lost).

If ``apply`` or the commit fails, nothing of the batch is marked or acknowledged: the LC's
outbox re-sends it. The broker is acknowledged (MQTT PUBACK) when a message is queued, not when
it is applied: the outbox, not the broker session, is what guarantees delivery.
"""

from __future__ import annotations

import logging
import queue
import threading
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Protocol

from broker.client import BusClient, BusClosed, BusMessage
from broker.dedup import Dedup
from broker.envelope import Ack, Envelope, MalformedMessage
from broker.topics import GM_UP_SUBSCRIPTION, InvalidTopic, UpTopic, ack_topic, parse_topic

__all__ = ["Applied", "ApplyUpstream", "NothingToWrite", "Upstream", "UpstreamReceiver"]

log = logging.getLogger(__name__)

DEFAULT_BATCH_MAX = 500


@dataclass(frozen=True)
class Upstream:
    """One decoded upstream message: its topic and envelope."""

    topic: UpTopic
    envelope: Envelope


class Applied(Protocol):
    """What ``apply`` made of a batch: durable writes, then in-memory effects."""

    def write(self, pipe: Any) -> None:
        """Queue the batch's durable writes on ``pipe`` (a Redis ``MULTI`` pipeline)."""

    def done(self) -> None:
        """Called once the writes and the ids' marks are committed."""


class NothingToWrite:
    """An `Applied` without durable writes (its effects are in ``done``, if given)."""

    def __init__(self, done: Callable[[], None] | None = None) -> None:
        self._done = done

    def write(self, pipe: Any) -> None:
        """Nothing to queue."""

    def done(self) -> None:
        """Run the callback, if any."""
        if self._done is not None:
            self._done()


#: ``apply(batch) -> Applied``: decode, check and coalesce the messages not applied before.
ApplyUpstream = Callable[[list[Upstream]], Applied]
#: Called with each committed batch (the messages applied for the first time).
AppliedListener = Callable[[list[Upstream]], None]

_STOP = object()


class UpstreamReceiver:
    """Applies each upstream message once, in batches, and acknowledges every copy."""

    def __init__(
        self,
        bus: BusClient,
        dedup: Dedup,
        apply: ApplyUpstream,
        *,
        topic_filter: str = GM_UP_SUBSCRIPTION,
        on_malformed: Callable[[str], None] | None = None,
        workers: int = 1,
        batch_max: int = DEFAULT_BATCH_MAX,
    ) -> None:
        if workers < 1 or batch_max < 1:
            raise ValueError(f"workers ({workers}) and batch_max ({batch_max}) must be >= 1")
        self._bus = bus
        self._dedup = dedup
        self._apply = apply
        self._filter = topic_filter
        self._on_malformed = on_malformed or (lambda _reason: None)
        self._batch_max = batch_max
        self._queues: list[queue.SimpleQueue[object]] = [
            queue.SimpleQueue() for _ in range(workers)
        ]
        self._threads = [
            threading.Thread(target=self._run, args=(q,), name=f"gm-upstream-{i}", daemon=True)
            for i, q in enumerate(self._queues)
        ]
        #: Called after each commit with the batch's newly applied messages (tests, benchmarks).
        self.listeners: list[AppliedListener] = []
        self.batches = 0  # committed batches, for tests and benchmarks

    def start(self) -> None:
        """Start the appliers and subscribe (before or after the bus client starts)."""
        for thread in self._threads:
            if not thread.is_alive():
                thread.start()
        self._bus.subscribe(self._filter, self.handle)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the appliers after the batches they hold (what is queued is re-sent by LCs)."""
        for q in self._queues:
            q.put(_STOP)
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout)

    def handle(self, message: BusMessage) -> None:
        """Decode one upstream message and queue it (runs on the bus client's dispatcher)."""
        try:
            topic = parse_topic(message.topic)
            if not isinstance(topic, UpTopic):
                raise InvalidTopic(f"topic {message.topic!r} is not an upstream topic")
            envelope = Envelope.from_bytes(message.payload)
        except (InvalidTopic, MalformedMessage) as err:
            log.error(
                "dropping bad upstream message", extra={"topic": message.topic, "error": str(err)}
            )
            self._on_malformed("decode")
            return
        if envelope.node != topic.node:
            log.error(
                "dropping upstream message whose envelope names another node",
                extra={"topic": message.topic, "node": envelope.node, "id": envelope.id},
            )
            self._on_malformed("node-mismatch")
            return
        self._queues[self._shard(topic)].put(Upstream(topic, envelope))

    def _shard(self, topic: UpTopic) -> int:
        """The applier of an object: its messages are applied in order by one thread."""
        if len(self._queues) == 1:
            return 0
        name = f"{topic.kind}/{topic.namespace}/{topic.name}".encode()
        return zlib.crc32(name) % len(self._queues)

    def _run(self, inbox: queue.SimpleQueue[object]) -> None:
        while True:
            first = inbox.get()
            if first is _STOP:
                return
            batch: list[Upstream] = [first]  # type: ignore[list-item]
            stopping = False
            while len(batch) < self._batch_max:
                try:
                    item = inbox.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stopping = True
                    break
                batch.append(item)  # type: ignore[arg-type]
            try:
                self.apply_batch(batch)
            except Exception:
                log.exception(
                    "applying upstream messages failed; the LCs will re-send them",
                    extra={"messages": len(batch)},
                )
            if stopping:
                return

    def apply_batch(self, batch: Sequence[Upstream]) -> list[Upstream]:
        """Apply the messages of ``batch`` not applied before, commit, acknowledge every one;
        returns the newly applied. Raises if nothing could be committed (nothing is acked)."""
        ids = [item.envelope.id for item in batch]
        seen = set(self._dedup.applied_ids(ids))
        fresh: list[Upstream] = []
        for item in batch:
            if item.envelope.id in seen:
                log.debug("duplicate upstream message", extra={"id": item.envelope.id})
                continue
            seen.add(item.envelope.id)  # a second copy within the batch
            fresh.append(item)
        if fresh:
            applied = self._apply(fresh)
            self._dedup.commit([item.envelope.id for item in fresh], applied.write)
            applied.done()
            self.batches += 1
            for listener in list(self.listeners):
                listener(fresh)
        self._acknowledge(batch)
        return fresh

    def _acknowledge(self, batch: Sequence[Upstream]) -> None:
        by_node: dict[str, dict[str, None]] = {}  # node -> its ids, in order, once each
        for item in batch:
            by_node.setdefault(item.topic.node, {})[item.envelope.id] = None
        for node, ids in by_node.items():
            try:
                future = self._bus.publish_async(ack_topic(node), Ack(ids=list(ids)))
            except BusClosed:
                return  # shutting down; the LC re-sends and the duplicates are acknowledged later
            future.add_done_callback(_warn_if_failed(node, len(ids)))


def _warn_if_failed(node: str, count: int) -> Callable[[Future[None]], None]:
    def done(future: Future[None]) -> None:
        error = future.exception()
        if error is not None and not isinstance(error, BusClosed):
            # The LC re-sends the messages and gets a fresh ack for the duplicates.
            log.warning(
                "ack not delivered", extra={"node": node, "ids": count, "error": str(error)}
            )

    return done
