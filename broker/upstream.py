"""The GM's end of upstream delivery: decode, de-duplicate, apply once, acknowledge.

Subscribes ``$share/gm/sedna/node/+/up/#``; for every envelope whose id `Dedup` has not seen
applied it calls ``apply``, then marks the id applied and publishes it on
``sedna/node/<node>/ack`` (again for a duplicate, whose earlier ack may have been lost). If
``apply`` raises, nothing is marked and no ack is sent, so the LC's outbox re-sends the message
later. ``apply`` must make the message durable before it returns and be idempotent for copies:
a crash between applying and marking re-applies the re-sent copy, which must change nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future

from broker.client import BusClient, BusClosed, BusMessage
from broker.dedup import Dedup
from broker.envelope import Ack, Envelope, MalformedMessage
from broker.topics import GM_UP_SUBSCRIPTION, InvalidTopic, UpTopic, ack_topic, parse_topic

__all__ = ["ApplyUpstream", "UpstreamReceiver"]

log = logging.getLogger(__name__)

ApplyUpstream = Callable[[UpTopic, Envelope], None]


class UpstreamReceiver:
    """Applies each upstream message once and acknowledges every copy."""

    def __init__(
        self,
        bus: BusClient,
        dedup: Dedup,
        apply: ApplyUpstream,
        *,
        topic_filter: str = GM_UP_SUBSCRIPTION,
        on_malformed: Callable[[str], None] | None = None,
    ) -> None:
        self._bus = bus
        self._dedup = dedup
        self._apply = apply
        self._filter = topic_filter
        self._on_malformed = on_malformed or (lambda _reason: None)

    def start(self) -> None:
        """Subscribe (before or after the bus client starts)."""
        self._bus.subscribe(self._filter, self.handle)

    def handle(self, message: BusMessage) -> None:
        """Process one upstream message (runs on the bus client's dispatcher thread)."""
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
        if self._dedup.applied(envelope.id):
            log.debug("duplicate upstream message", extra={"id": envelope.id, "seq": envelope.seq})
        else:
            try:
                self._apply(topic, envelope)
            except Exception:
                log.exception(
                    "applying upstream message failed; the LC will re-send it",
                    extra={"topic": message.topic, "id": envelope.id},
                )
                return
            self._dedup.mark_applied(envelope.id)
        try:
            future = self._bus.publish_async(ack_topic(topic.node), Ack(ids=[envelope.id]))
        except BusClosed:
            return  # shutting down; the LC re-sends and the duplicate is acknowledged later
        future.add_done_callback(_warn_if_failed(envelope.id))


def _warn_if_failed(message_id: str) -> Callable[[Future[None]], None]:
    def done(future: Future[None]) -> None:
        error = future.exception()
        if error is not None and not isinstance(error, BusClosed):
            # The LC re-sends the message and gets a fresh ack for the duplicate.
            log.warning("ack not delivered", extra={"id": message_id, "error": str(error)})

    return done
