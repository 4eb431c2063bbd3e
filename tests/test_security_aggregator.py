"""The aggregator listens only where it is told (``AGG_BIND_IP``) and can speak TLS; the job
token is still required over TLS."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from apiserver.pki import ensure_credentials
from sedna.common.errors import ConfigError
from sedna.core.federated_learning import (
    AggregationClient,
    AggregationServer,
    AggregatorSettings,
    AggregatorUnavailable,
    NotAuthenticated,
    TrainerSettings,
)
from sedna.core.federated_learning.client import RetryPolicy
from tests.federated_support import loopback_settings

TOKEN = "tls-token"
JOB = "tls-job"
MODEL = [("w", np.zeros(3, dtype=np.float32))]


@pytest.fixture
def pki(tmp_path: Path):
    return ensure_credentials(tmp_path, ["127.0.0.1"])


@pytest.fixture
def tls_server(pki) -> Iterator[AggregationServer]:
    settings = loopback_settings(JOB, TOKEN, tls_cert=pki.server_cert, tls_key=pki.server_key)
    aggregator = AggregationServer(settings=settings, initial_weights=MODEL).serve()
    yield aggregator
    aggregator.stop(grace=0)


def _client(server: AggregationServer, ca: bytes | None, token: str = TOKEN) -> AggregationClient:
    return AggregationClient(
        f"127.0.0.1:{server.port}",
        token,
        JOB,
        "w1",
        tls_ca=ca,
        retry=RetryPolicy(budget_seconds=1.0),
    )


def test_pull_over_tls_with_the_ca(tls_server: AggregationServer, pki) -> None:
    with _client(tls_server, pki.ca_cert.read_bytes()) as client:
        pulled = client.pull()
    assert pulled.ready and [name for name, _ in pulled.tensors] == ["w"]


def test_tls_still_needs_the_job_token(tls_server: AggregationServer, pki) -> None:
    with (
        _client(tls_server, pki.ca_cert.read_bytes(), token="wrong") as client,
        pytest.raises(NotAuthenticated),
    ):
        client.pull()


def test_a_plaintext_client_cannot_talk_to_a_tls_aggregator(tls_server: AggregationServer) -> None:
    with _client(tls_server, None) as client, pytest.raises(AggregatorUnavailable):
        client.pull()


def test_aggregator_binds_to_agg_bind_ip(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGG_BIND_IP", "127.0.0.1")
    monkeypatch.setenv("AGG_BIND_PORT", "0")
    monkeypatch.setenv("SEDNA_JOB_TOKEN", TOKEN)
    monkeypatch.setenv("PARTICIPANTS_COUNT", "1")
    settings = AggregatorSettings.from_env()
    assert settings.bind_host == "127.0.0.1"
    aggregator = AggregationServer(settings=settings, initial_weights=MODEL).serve()
    try:
        # Not on every interface: another local address of this host is refused.
        with pytest.raises(OSError), socket.create_connection(("127.0.0.2", aggregator.port), 1):
            pass
        socket.create_connection(("127.0.0.1", aggregator.port), 1).close()
    finally:
        aggregator.stop(grace=0)


def test_tls_settings_come_in_pairs_and_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, pki
) -> None:
    with pytest.raises(ValueError, match="AGG_TLS_CERT and AGG_TLS_KEY go together"):
        loopback_settings(JOB, TOKEN, tls_cert=pki.server_cert)
    monkeypatch.setenv("AGG_PORT", "7000")
    monkeypatch.setenv("SEDNA_JOB_TOKEN", TOKEN)
    monkeypatch.setenv("WORKER_NAME", "w1")
    monkeypatch.setenv("AGG_TLS_CA", str(pki.ca_cert))
    assert TrainerSettings.from_env().tls_ca == pki.ca_cert
    monkeypatch.setenv("AGG_BIND_PORT", "0")
    monkeypatch.setenv("PARTICIPANTS_COUNT", "1")
    monkeypatch.setenv("AGG_TLS_KEY", str(pki.server_key))
    with pytest.raises(ConfigError, match="AGG_TLS_CERT"):
        AggregatorSettings.from_env()
