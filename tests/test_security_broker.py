"""Client ids are bound to broker users: no node takes over another node's or the GM's session."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from broker.client import BusClient, offline_will
from broker.envelope import NodeState
from broker.localservices import MosquittoService
from broker.mosquitto import MosquittoOptions, render_config
from broker.topics import GM_STATE_SUBSCRIPTION, state_topic
from tests.services import SECURED_NODES, wait_for
from tests.test_broker_client import Inbox


@pytest.fixture
def broker(tmp_path: Path) -> MosquittoService:
    service = MosquittoService(tmp_path / "mosquitto", auth=True, nodes=SECURED_NODES).start()
    yield service
    service.kill()


def _takeovers(service: MosquittoService) -> list[str]:
    return [
        line for line in service.log_path.read_text().splitlines() if "already connected" in line
    ]


@pytest.mark.parametrize("victim", ["sedna-lc-edge1", "sedna-gm-gm-0"])
def test_another_users_client_id_does_not_take_over_its_session(
    broker: MosquittoService, bus_client, victim: str
) -> None:
    states = Inbox()
    gm = bus_client("sedna-gm-gm-0", broker.settings("gm"))
    gm.subscribe(GM_STATE_SUBSCRIPTION, states)
    edge1 = bus_client("sedna-lc-edge1", broker.settings("edge1"), will=offline_will("edge1"))
    edge1.publish(state_topic("edge1"), NodeState(state="online"), retain=True)
    wait_for(lambda: len(states.messages) == 1, what="edge1 online")

    # edge0's own credentials, someone else's client id.
    intruder = BusClient(victim, broker.settings("edge0"))
    intruder.start(wait=10)
    try:
        time.sleep(1.0)  # long enough for a takeover to show (the broker acts at CONNECT)
        assert gm.connected.is_set() and edge1.connected.is_set()
        assert _takeovers(broker) == []
        assert [NodeState.from_bytes(p).state for p in states.payloads()] == ["online"]
    finally:
        intruder.close()
    # The GM still hears edge1, on the same sessions.
    edge1.publish(state_topic("edge1"), NodeState(state="online", version="2"), retain=True)
    wait_for(lambda: len(states.messages) == 2, what="edge1 heard after the attempt")


def test_a_users_second_connection_replaces_its_first(broker: MosquittoService, bus_client) -> None:
    """The binding works by user: the one session a user has is the last connection's."""
    bus_client("first", broker.settings("edge0"))
    bus_client("second", broker.settings("edge0"), start=False).start(wait=10)
    wait_for(lambda: _takeovers(broker), what="the broker replacing edge0's first connection")
    assert "edge0" in _takeovers(broker)[0]


def test_the_generated_config_binds_client_ids_only_with_auth(tmp_path: Path) -> None:
    secured = MosquittoOptions(port=1883, data_dir=tmp_path, auth=True)
    text = render_config(secured, password_file=tmp_path / "p", acl_file=tmp_path / "a")
    assert "use_username_as_clientid true" in text.splitlines()
    anonymous = render_config(MosquittoOptions(port=1883, data_dir=tmp_path, auth=False))
    assert "use_username_as_clientid" not in anonymous
