"""Pytest fixtures that start real Mosquitto and Redis processes on free loopback ports.

Function-scoped fixtures (``mosquitto_service``, ``redis_service``) give a test its own process
to kill, freeze or restart; session-scoped ones (``shared_mosquitto``, ``shared_redis``,
``secured_mosquitto``) are shared by tests that only use them: such tests must pick unique
topics, client ids and key prefixes (``unique_name``).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from broker.client import BusClient, BusSettings, Will
from broker.localservices import MosquittoService, RedisService
from broker.store import connect_redis

__all__ = [
    "SECURED_NODES",
    "bus_client",
    "mosquitto_service",
    "redis_client",
    "redis_service",
    "secured_mosquitto",
    "shared_mosquitto",
    "shared_redis",
    "unique_name",
    "wait_for",
]

#: The nodes that have a user on the `secured_mosquitto` broker (plus the ``gm`` user).
SECURED_NODES = ("edge0", "edge1")

# Bus settings that make tests recover fast from broker restarts.
FAST_RECONNECT = {"reconnect_min_delay": 0.05, "reconnect_max_delay": 0.5, "keepalive": 5}


def wait_for(
    condition: Callable[[], object], timeout: float = 10.0, what: str = "condition"
) -> None:
    """Poll ``condition`` until it is truthy; fail the test naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


@pytest.fixture
def unique_name() -> str:
    """A fresh DNS-1123 name (for node names, client ids and key prefixes in shared services)."""
    return f"t{uuid.uuid4().hex[:12]}"


@pytest.fixture
def mosquitto_service(tmp_path: Path) -> Iterator[MosquittoService]:
    """A broker of the test's own (anonymous access), free to kill, freeze and restart."""
    service = MosquittoService(tmp_path / "mosquitto").start()
    yield service
    service.kill()


@pytest.fixture
def redis_service(tmp_path: Path) -> Iterator[RedisService]:
    """A Redis of the test's own (append-only persistence), free to kill and restart."""
    service = RedisService(tmp_path / "redis").start()
    yield service
    service.kill()


@pytest.fixture(scope="session")
def shared_mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MosquittoService]:
    """One anonymous broker for the whole session; do not stop it."""
    service = MosquittoService(tmp_path_factory.mktemp("mosquitto-shared")).start()
    yield service
    service.stop()


@pytest.fixture(scope="session")
def secured_mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MosquittoService]:
    """A broker with auth and ACL: a ``gm`` user and one user per node of `SECURED_NODES`.

    ``secured_mosquitto.settings("edge0")`` gives bus settings with that user's credentials.
    """
    service = MosquittoService(
        tmp_path_factory.mktemp("mosquitto-secured"), auth=True, nodes=SECURED_NODES
    ).start()
    yield service
    service.stop()


@pytest.fixture(scope="session")
def shared_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisService]:
    """One Redis for the whole session; do not stop it, use unique key prefixes."""
    service = RedisService(tmp_path_factory.mktemp("redis-shared")).start()
    yield service
    service.stop()


@pytest.fixture
def redis_client(shared_redis: RedisService) -> Iterator[redis.Redis]:
    """A client of `shared_redis`."""
    client = connect_redis(shared_redis.url)
    yield client
    client.close()


BusClientFactory = Callable[..., BusClient]


@pytest.fixture
def bus_client() -> Iterator[BusClientFactory]:
    """Make bus clients that are closed after the test.

    ``bus_client(client_id, settings, will=None, start=True)``; a started client is connected.
    """
    clients: list[BusClient] = []

    def make(
        client_id: str, settings: BusSettings, *, will: Will | None = None, start: bool = True
    ) -> BusClient:
        client = BusClient(client_id, settings.model_copy(update=FAST_RECONNECT), will=will)
        clients.append(client)
        if start:
            client.start(wait=10)
        return client

    yield make
    for client in clients:
        client.close()
