"""The one MQTT client of the bus (paho-mqtt 2.x, MQTT v5, QoS 1, persistent session).

Network I/O runs on paho's thread; received messages are handed to a dispatcher thread that
runs the handlers in arrival order and then acknowledges each message to the broker, so a
handler may block without stalling the connection and a crash before handling loses nothing
the broker still holds for the session.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import zlib
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions
from pydantic import BaseModel, ConfigDict, Field

from broker.envelope import NodeState, WireModel
from broker.topics import state_topic, strip_share

__all__ = [
    "BusClient",
    "BusClosed",
    "BusError",
    "BusMessage",
    "BusSettings",
    "BusUnavailable",
    "Handler",
    "PublishRefused",
    "SubscriptionOptions",
    "SubscriptionRefused",
    "Will",
    "offline_will",
]

log = logging.getLogger(__name__)

QOS = 1


class BusError(Exception):
    """Base of the bus client's errors."""


class BusUnavailable(BusError):
    """The broker did not answer in time (not connected, or no acknowledgement)."""


class BusClosed(BusUnavailable):
    """The client was closed before the broker answered."""


class PublishRefused(BusError):
    """The broker refused a publish (e.g. the ACL does not let this user write the topic)."""


class SubscriptionRefused(BusError):
    """The broker refused a subscription (e.g. the ACL does not let this user read it)."""


class BusSettings(BaseModel):
    """Where the broker is and how to talk to it."""

    model_config = ConfigDict(frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    username: str | None = None
    password: str | None = None
    keepalive: int = Field(default=30, ge=5, description="seconds between PINGs")
    session_expiry: int = Field(
        default=7 * 24 * 3600, ge=0, description="seconds the broker keeps the session offline"
    )
    reconnect_min_delay: float = Field(default=0.5, gt=0)
    reconnect_max_delay: float = Field(default=30.0, gt=0)
    max_inflight: int = Field(default=100, ge=1, description="unacknowledged QoS 1 publishes")


class SubscriptionOptions(BaseModel):
    """How the broker serves one subscription (MQTT v5 subscription options).

    The default is the bus's: QoS 1 (queued for the session while the client is away) and the
    retained messages sent when the subscription is made. ``qos=0`` is not queued while away;
    ``retain_handling=2`` never sends retained messages; ``renew_on_connect`` subscribes again on
    every connection, even when the broker kept the session, so the retained messages come
    again (with ``retain_handling=0``).
    """

    model_config = ConfigDict(frozen=True)

    qos: int = Field(default=QOS, ge=0, le=1)
    retain_handling: int = Field(default=0, ge=0, le=2)
    renew_on_connect: bool = False


class Will(BaseModel):
    """The message the broker publishes for this client when it disappears without closing."""

    model_config = ConfigDict(frozen=True)

    topic: str
    payload: bytes
    retain: bool = True


def offline_will(node: str, version: str = "") -> Will:
    """The LC's last will: a retained ``offline`` `NodeState` on ``sedna/node/<node>/state``."""
    return Will(
        topic=state_topic(node),
        payload=NodeState(state="offline", version=version).to_bytes(),
        retain=True,
    )


@dataclass(frozen=True, slots=True)
class BusMessage:
    """A message received from the broker."""

    topic: str
    payload: bytes
    retain: bool
    duplicate: bool


Handler = Callable[[BusMessage], None]
Payload = bytes | str | WireModel


def _encode(payload: Payload) -> bytes:
    if isinstance(payload, WireModel):
        return payload.to_bytes()
    if isinstance(payload, str):
        return payload.encode()
    return bytes(payload)


class _Tracker:
    """Futures keyed by packet id, tolerant of the answer arriving before the registration."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[int, Future[None]] = {}
        self._early: dict[int, BaseException | None] = {}

    def register(self, mid: int) -> Future[None]:
        future: Future[None] = Future()
        with self._lock:
            if mid in self._early:
                outcome = self._early.pop(mid)
            else:
                self._pending[mid] = future
                return future
        _settle(future, outcome)
        return future

    def resolve(self, mid: int, outcome: BaseException | None) -> None:
        with self._lock:
            future = self._pending.pop(mid, None)
            if future is None:
                self._early[mid] = outcome
                return
        _settle(future, outcome)

    def fail_all(self, error: BaseException) -> None:
        with self._lock:
            pending, self._pending = self._pending, {}
            self._early.clear()
        for future in pending.values():
            _settle(future, error)


def _settle(future: Future[None], outcome: BaseException | None) -> None:
    if future.done():
        return
    if outcome is None:
        future.set_result(None)
    else:
        future.set_exception(outcome)


_STOP = object()
# Connection refusals that retrying cannot cure.
_FINAL_REFUSALS = frozenset({"Not authorized", "Bad user name or password", "Banned"})


def _subscription_id(topic_filter: str) -> int:
    """A stable MQTT v5 subscription identifier (1..268435455) for a filter.

    Stable across restarts, so messages queued for a persistent session still find their handler.
    """
    return zlib.crc32(topic_filter.encode()) % 268_435_455 + 1


class BusClient:
    """An MQTT v5 client with a stable id and a persistent session; QoS 1 everywhere.

    Register handlers with `subscribe`, then `start`. Subscriptions are (re)sent whenever the
    broker reports that it lost the session. `publish` returns once the broker acknowledged.
    """

    def __init__(self, client_id: str, settings: BusSettings, *, will: Will | None = None) -> None:
        if not client_id:
            raise ValueError("client_id must be a non-empty, stable string")
        self.client_id = client_id
        self.settings = settings
        self._connected = threading.Event()
        self._closed = False
        self._generation = 0
        self._last_refusal = ""
        self._lock = threading.Lock()
        self._handlers: dict[str, tuple[int, Handler]] = {}
        self._options: dict[str, SubscriptionOptions] = {}
        self._subscribed: set[str] = set()
        self._publishes = _Tracker()
        self._subscribes = _Tracker()
        self._inbox: queue.Queue[object] = queue.Queue()
        #: Called on paho's network thread each time a connection is made (after the
        #: subscriptions were sent): must not block; an exception is logged, not raised.
        self.connect_listeners: list[Callable[[], None]] = []
        self._dispatcher = threading.Thread(
            target=self._dispatch, name=f"bus-dispatch-{client_id}", daemon=True
        )

        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv5,
            manual_ack=True,
        )
        if settings.username is not None:
            client.username_pw_set(settings.username, settings.password)
        if will is not None:
            client.will_set(will.topic, will.payload, qos=QOS, retain=will.retain)
        # paho types these as int, but it only does arithmetic and sleeps with them.
        client.reconnect_delay_set(settings.reconnect_min_delay, settings.reconnect_max_delay)  # type: ignore[arg-type]
        client.max_inflight_messages_set(settings.max_inflight)
        client.max_queued_messages_set(0)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        self._client = client

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def connected(self) -> threading.Event:
        """Set while the client holds a connection to the broker."""
        return self._connected

    def start(self, wait: float | None = None) -> None:
        """Connect in the background (retrying with backoff); optionally wait for the connection.

        Raises `BusUnavailable` if ``wait`` seconds pass without a connection (the client keeps
        trying in the background).
        """
        if self._dispatcher.is_alive() or self._closed:
            raise BusError(f"client {self.client_id!r} was already started")
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self.settings.session_expiry
        self._dispatcher.start()
        self._client.connect_async(
            self.settings.host,
            self.settings.port,
            keepalive=self.settings.keepalive,
            clean_start=False,
            properties=props,
        )
        self._client.loop_start()
        if wait is not None and not self._wait_connected_or_refused(wait):
            refused = f"; the broker refused it: {self._last_refusal}" if self._last_refusal else ""
            raise BusUnavailable(
                f"no connection to the broker at {self.settings.host}:{self.settings.port} "
                f"within {wait}s (client {self.client_id!r}, user {self.settings.username!r})"
                f"{refused}"
            )

    def _wait_connected_or_refused(self, timeout: float) -> bool:
        """Wait for the connection, giving up early if the broker refuses our credentials."""
        deadline = time.monotonic() + timeout
        while not self._connected.wait(0.05):
            if self._last_refusal in _FINAL_REFUSALS or time.monotonic() > deadline:
                return False
        return True

    def wait_connected(self, timeout: float | None = None) -> bool:
        """Wait until connected; return whether the client is connected."""
        return self._connected.wait(timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Disconnect cleanly (the broker keeps the session) and stop the threads.

        A normal disconnect does not fire the last will. Messages already received are handled
        before the dispatcher stops.
        """
        if self._closed:
            return
        self._closed = True
        self._client.disconnect()
        self._client.loop_stop()
        self._connected.clear()
        self._publishes.fail_all(BusClosed(f"client {self.client_id!r} closed"))
        self._subscribes.fail_all(BusClosed(f"client {self.client_id!r} closed"))
        if self._dispatcher.is_alive():
            self._inbox.put(_STOP)
            self._dispatcher.join(timeout)

    def __enter__(self) -> BusClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- publishing ------------------------------------------------------------------------

    def publish_async(self, topic: str, payload: Payload, *, retain: bool = False) -> Future[None]:
        """Queue a QoS 1 publish; the future completes when the broker acknowledged it.

        While disconnected the message waits in the client and goes out on reconnect. The
        future fails with `PublishRefused` if the broker refuses it.
        """
        if self._closed:
            raise BusClosed(f"client {self.client_id!r} is closed")
        info = self._client.publish(topic, _encode(payload), qos=QOS, retain=retain)
        future = self._publishes.register(info.mid)
        if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
            self._publishes.resolve(
                info.mid,
                BusUnavailable(f"publish to {topic!r} not queued: {mqtt.error_string(info.rc)}"),
            )
        return future

    def publish(
        self, topic: str, payload: Payload, *, retain: bool = False, timeout: float = 10.0
    ) -> None:
        """Publish with QoS 1 and wait for the broker's acknowledgement.

        Raises `PublishRefused` if the broker refuses it, `BusUnavailable` after ``timeout``
        seconds without an acknowledgement (the message may still go out later).
        """
        future = self.publish_async(topic, payload, retain=retain)
        try:
            future.result(timeout)
        except FutureTimeout:
            raise BusUnavailable(
                f"no acknowledgement for publish to {topic!r} within {timeout}s"
            ) from None

    # -- subscribing -----------------------------------------------------------------------

    def subscribe(
        self,
        topic_filter: str,
        handler: Handler,
        *,
        timeout: float = 10.0,
        options: SubscriptionOptions | None = None,
    ) -> None:
        """Call ``handler`` for every message matching ``topic_filter`` (QoS 1 unless
        ``options`` say otherwise).

        If connected, wait for the broker's answer and raise `SubscriptionRefused` if it refuses
        (the handler is dropped) or `BusUnavailable` if it does not answer in ``timeout`` seconds
        (the handler stays; the subscription is sent again on reconnect). If not connected, the
        subscription is sent when the connection comes up.
        """
        strip_share(topic_filter)  # validates $share/<group>/<filter>
        sub_id = _subscription_id(topic_filter)
        with self._lock:
            for other, (other_id, _) in self._handlers.items():
                if other_id == sub_id and other != topic_filter:
                    raise ValueError(
                        f"topic filters {other!r} and {topic_filter!r} hash to the same "
                        "subscription identifier; rename one"
                    )
            self._handlers[topic_filter] = (sub_id, handler)
            self._options[topic_filter] = options or SubscriptionOptions()
        if not self._connected.is_set():
            return
        future = self._send_subscribe(topic_filter, sub_id)
        try:
            future.result(timeout)
        except FutureTimeout:
            raise BusUnavailable(
                f"no answer to the subscription {topic_filter!r} within {timeout}s"
            ) from None
        except SubscriptionRefused:
            with self._lock:
                self._handlers.pop(topic_filter, None)
            raise

    def unsubscribe(self, topic_filter: str) -> None:
        """Stop receiving ``topic_filter`` (also removes it from the persistent session)."""
        with self._lock:
            self._handlers.pop(topic_filter, None)
            self._subscribed.discard(topic_filter)
        self._client.unsubscribe(topic_filter)

    def _send_subscribe(self, topic_filter: str, sub_id: int) -> Future[None]:
        props = Properties(PacketTypes.SUBSCRIBE)
        props.SubscriptionIdentifier = sub_id
        with self._lock:
            wanted = self._options.get(topic_filter) or SubscriptionOptions()
        options = SubscribeOptions(qos=wanted.qos, retainHandling=wanted.retain_handling)
        rc, mid = self._client.subscribe(topic_filter, options=options, properties=props)
        if mid is None:
            future: Future[None] = Future()
            future.set_exception(
                BusUnavailable(f"subscription {topic_filter!r} not sent: {mqtt.error_string(rc)}")
            )
            return future
        future = self._subscribes.register(mid)

        def done(f: Future[None]) -> None:
            error = f.exception()
            if error is None:
                with self._lock:
                    self._subscribed.add(topic_filter)
            else:
                log.error(
                    "subscription failed", extra={"filter": topic_filter, "error": str(error)}
                )

        future.add_done_callback(done)
        return future

    # -- paho callbacks (network thread: never block here) ----------------------------------

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            self._last_refusal = str(reason_code)
            log.error(
                "broker refused the connection",
                extra={"client_id": self.client_id, "reason": str(reason_code)},
            )
            return
        self._generation += 1
        self._last_refusal = ""
        with self._lock:
            if not flags.session_present:
                self._subscribed.clear()
            missing = [
                (f, i)
                for f, (i, _) in self._handlers.items()
                if f not in self._subscribed or self._options[f].renew_on_connect
            ]
        log.info(
            "connected to the broker",
            extra={
                "client_id": self.client_id,
                "session_present": flags.session_present,
                "resubscribe": missing,
            },
        )
        for topic_filter, sub_id in missing:
            self._send_subscribe(topic_filter, sub_id)
        self._connected.set()
        for listener in list(self.connect_listeners):
            try:
                listener()
            except Exception:  # never let one kill paho's thread
                log.exception("connect listener failed", extra={"client_id": self.client_id})

    def _on_connect_fail(self, client: mqtt.Client, userdata: object) -> None:
        log.warning(
            "cannot reach the broker; retrying",
            extra={"client_id": self.client_id, "port": self.settings.port},
        )

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self._connected.clear()
        # SUBSCRIBE packets are not resent by paho; the next connect sends what is missing.
        self._subscribes.fail_all(BusUnavailable("disconnected before the broker answered"))
        if not self._closed:
            log.warning(
                "lost the broker connection; reconnecting",
                extra={"client_id": self.client_id, "reason": str(reason_code)},
            )

    def _on_publish(
        self,
        client: mqtt.Client,
        userdata: object,
        mid: int,
        reason_code: ReasonCode,
        properties: Properties,
    ) -> None:
        outcome = None
        if reason_code.is_failure:
            outcome = PublishRefused(f"broker refused the publish: {reason_code}")
        self._publishes.resolve(mid, outcome)

    def _on_subscribe(
        self,
        client: mqtt.Client,
        userdata: object,
        mid: int,
        reason_codes: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        refused = [str(rc) for rc in reason_codes if rc.is_failure]
        outcome = (
            SubscriptionRefused(f"broker refused the subscription: {refused}") if refused else None
        )
        self._subscribes.resolve(mid, outcome)

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        self._inbox.put((self._generation, message))

    # -- dispatcher thread -----------------------------------------------------------------

    def _dispatch(self) -> None:
        while True:
            item = self._inbox.get()
            if item is _STOP:
                return
            generation, message = item  # type: ignore[misc]
            received = BusMessage(
                topic=message.topic,
                payload=bytes(message.payload),
                retain=bool(message.retain),
                duplicate=bool(message.dup),
            )
            # With overlapping filters the broker sends one copy per subscription, each tagged
            # with its subscription identifier: run only the handlers the copy was sent for.
            ids = getattr(message.properties, "SubscriptionIdentifier", None) or []
            with self._lock:
                handlers = [
                    h
                    for f, (i, h) in self._handlers.items()
                    if (not ids or i in ids)
                    and mqtt.topic_matches_sub(strip_share(f), received.topic)
                ]
            if not handlers:
                log.debug("no handler for message", extra={"topic": received.topic})
            for handler in handlers:
                try:
                    handler(received)
                except Exception:
                    log.exception(
                        "message handler failed",
                        extra={"topic": received.topic, "handler": handler},
                    )
            # Acknowledge only on the connection the message came on: after a reconnect the
            # broker re-sends it (same session) or has forgotten it (new session).
            if message.qos > 0 and generation == self._generation and self._connected.is_set():
                self._client.ack(message.mid, message.qos)
