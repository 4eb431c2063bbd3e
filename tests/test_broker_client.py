"""The bus client against a real Mosquitto: persistent sessions, retained state, ACL."""

import contextlib
import threading

import pytest

from broker.client import (
    BusMessage,
    BusUnavailable,
    PublishRefused,
    SubscriptionRefused,
    offline_will,
)
from broker.envelope import NodeState
from broker.localservices import MosquittoService
from broker.topics import (
    GM_STATE_SUBSCRIPTION,
    GM_UP_SUBSCRIPTION,
    ack_topic,
    down_filter,
    down_topic,
    state_topic,
    up_topic,
)
from tests.services import wait_for


class Inbox:
    """Collects received messages (handlers run on the client's dispatcher thread)."""

    def __init__(self) -> None:
        self.messages: list[BusMessage] = []
        self._lock = threading.Lock()

    def __call__(self, message: BusMessage) -> None:
        with self._lock:
            self.messages.append(message)

    def topics(self) -> list[str]:
        with self._lock:
            return [m.topic for m in self.messages]

    def payloads(self) -> list[bytes]:
        with self._lock:
            return [m.payload for m in self.messages]


def test_persistent_session_keeps_messages_published_while_away(
    shared_mosquitto: MosquittoService, bus_client, unique_name: str
) -> None:
    settings = shared_mosquitto.settings()
    topic = down_topic(unique_name, "Dataset", "default", "d")
    first = Inbox()
    subscriber = bus_client(f"lc-{unique_name}", settings)
    subscriber.subscribe(topic, first)
    subscriber.close()

    publisher = bus_client(f"gm-{unique_name}", settings)
    for i in range(20):
        publisher.publish(topic, str(i))

    again = Inbox()
    restarted = bus_client(f"lc-{unique_name}", settings, start=False)
    restarted.subscribe(topic, again)  # registered before connecting: nothing is missed
    restarted.start(wait=10)
    wait_for(lambda: len(again.messages) >= 20, what="the 20 messages queued in the session")
    assert again.payloads() == [str(i).encode() for i in range(20)]
    assert first.messages == []


def test_retained_desired_state_and_empty_payload_deletion(
    shared_mosquitto: MosquittoService, bus_client, unique_name: str
) -> None:
    settings = shared_mosquitto.settings()
    node = unique_name
    kept, deleted = (down_topic(node, "Model", "default", n) for n in ("kept", "deleted"))
    gm = bus_client(f"gm-{node}", settings)
    live = Inbox()
    bus_client(f"lc-live-{node}", settings).subscribe(down_filter(node), live)

    gm.publish(kept, b'{"v": 1}', retain=True)
    gm.publish(deleted, b'{"v": 1}', retain=True)
    gm.publish(deleted, b"", retain=True)
    wait_for(lambda: len(live.messages) == 3, what="the live subscriber to see all three")
    assert live.topics() == [kept, deleted, deleted]
    assert live.payloads()[-1] == b""

    late = Inbox()
    bus_client(f"lc-late-{node}", settings).subscribe(down_filter(node), late)
    # Retained messages are queued at subscription time, so they precede this sentinel.
    sentinel = down_topic(node, "Model", "default", "sentinel")
    gm.publish(sentinel, b"{}")
    wait_for(lambda: sentinel in late.topics(), what="the sentinel")
    assert late.topics() == [kept, sentinel]
    assert late.messages[0].retain and late.messages[0].payload == b'{"v": 1}'


def test_last_will_marks_a_vanished_node_offline(
    mosquitto_service: MosquittoService, bus_client, unique_name: str
) -> None:
    settings = mosquitto_service.settings()
    node = unique_name
    states = Inbox()
    bus_client(f"gm-{node}", settings).subscribe(GM_STATE_SUBSCRIPTION, states)
    lc = bus_client(f"lc-{node}", settings, will=offline_will(node, "1.2.3"))
    lc.publish(state_topic(node), NodeState(state="online"), retain=True)
    wait_for(lambda: len(states.messages) == 1, what="online state")
    # Freezing the broker is not enough; drop the LC's socket without a DISCONNECT instead.
    lc._client.socket().close()  # a crashed LC sends no DISCONNECT
    wait_for(lambda: len(states.messages) >= 2, what="the last will", timeout=15)
    assert [NodeState.from_bytes(p).state for p in states.payloads()[:2]] == ["online", "offline"]
    assert NodeState.from_bytes(states.payloads()[1]).version == "1.2.3"


def test_acl_confines_each_node_to_its_own_topics(
    secured_mosquitto: MosquittoService, bus_client, unique_name: str
) -> None:
    gm_inbox, edge0_inbox = Inbox(), Inbox()
    gm = bus_client(f"gm-{unique_name}", secured_mosquitto.settings("gm"))
    gm.subscribe(GM_UP_SUBSCRIPTION, gm_inbox)
    edge0 = bus_client(f"lc-edge0-{unique_name}", secured_mosquitto.settings("edge0"))

    foreign_up = up_topic("edge1", "Dataset", "default", unique_name)
    own_up = up_topic("edge0", "Dataset", "default", unique_name)
    with pytest.raises(PublishRefused, match="Not authorized"):
        edge0.publish(foreign_up, b"{}")
    edge0.publish(own_up, b"{}")
    wait_for(lambda: own_up in gm_inbox.topics(), what="edge0's own upstream message")
    assert foreign_up not in gm_inbox.topics()

    # Mosquitto may grant the subscription and filter delivery, or refuse it: either way
    # nothing of edge1 may reach edge0.
    with contextlib.suppress(SubscriptionRefused):
        edge0.subscribe(down_filter("edge1"), edge0_inbox)
    edge0.subscribe(down_filter("edge0"), edge0_inbox)
    edge0.subscribe(ack_topic("edge0"), edge0_inbox)
    foreign_down = down_topic("edge1", "Model", "default", unique_name)
    own_down = down_topic("edge0", "Model", "default", unique_name)
    gm.publish(foreign_down, b"{}")
    gm.publish(ack_topic("edge1"), b'{"ids": []}')
    gm.publish(own_down, b"{}")
    gm.publish(ack_topic("edge0"), b'{"ids": []}')
    wait_for(lambda: ack_topic("edge0") in edge0_inbox.topics(), what="edge0's own messages")
    assert edge0_inbox.topics() == [own_down, ack_topic("edge0")]


def test_wrong_password_is_refused_with_a_clear_error(
    secured_mosquitto: MosquittoService, bus_client, unique_name: str
) -> None:
    settings = secured_mosquitto.settings("edge0").model_copy(update={"password": "wrong"})
    client = bus_client(f"lc-{unique_name}", settings, start=False)
    with pytest.raises(BusUnavailable, match=r"user 'edge0'.*refused it: Not authorized"):
        client.start(wait=10)


def test_publish_times_out_while_the_broker_is_frozen(
    mosquitto_service: MosquittoService, bus_client, unique_name: str
) -> None:
    client = bus_client(f"c-{unique_name}", mosquitto_service.settings())
    mosquitto_service.freeze()
    try:
        with pytest.raises(BusUnavailable, match=r"no acknowledgement .* within 0\.3s"):
            client.publish(up_topic(unique_name, "Model", "default", "m"), b"{}", timeout=0.3)
    finally:
        mosquitto_service.thaw()


def test_subscriptions_are_renewed_when_the_broker_lost_the_session(
    mosquitto_service: MosquittoService, bus_client, unique_name: str
) -> None:
    settings = mosquitto_service.settings()
    inbox = Inbox()
    lc = bus_client(f"lc-{unique_name}", settings)
    lc.subscribe(down_filter(unique_name), inbox)
    mosquitto_service.kill()  # never saved: the restarted broker knows no session
    wait_for(lambda: not lc.connected.is_set(), what="the client to notice")
    mosquitto_service.restart()
    assert lc.wait_connected(10)
    gm = bus_client(f"gm-{unique_name}", settings)
    # Retained, so it reaches the LC whether its re-subscription lands before or after.
    topic = down_topic(unique_name, "Model", "default", "m")
    gm.publish(topic, b"{}", retain=True)
    wait_for(lambda: inbox.topics() == [topic], what="delivery on the renewed subscription")
