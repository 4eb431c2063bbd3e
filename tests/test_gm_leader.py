"""Leader election through a Lease on the embedded API server: one leader, a standby takes over."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from apiserver import ApiServer
from gm.app import api_client_for
from gm.leader import LeaderElector


@pytest.fixture
def api(tmp_path: Path) -> Iterator[client.ApiClient]:
    server = ApiServer(tmp_path / "api")
    server.start()
    server.write_kubeconfig(tmp_path / "kubeconfig")
    try:
        yield api_client_for(str(tmp_path / "kubeconfig"))
    finally:
        server.stop()


def test_only_one_gm_leads_and_a_standby_takes_over_an_expired_lease(
    api: client.ApiClient,
) -> None:
    first = LeaderElector(api, "default", "sedna-gm", "gm-a", duration=2)
    second = LeaderElector(api, "default", "sedna-gm", "gm-b", duration=2)
    assert first.try_acquire() is True
    assert second.try_acquire() is False
    assert first.try_acquire() is True  # renewing its own lease

    waiting = threading.Thread(target=second.acquire, daemon=True)
    started = time.monotonic()
    waiting.start()  # the first GM stops renewing: its lease expires after 2 s
    waiting.join(10)
    assert second.is_leader.is_set()
    assert time.monotonic() - started >= 1.5
    lease = client.CoordinationV1Api(api).read_namespaced_lease("sedna-gm", "default")
    assert lease.spec.holder_identity == "gm-b"
    assert lease.spec.lease_transitions == 1
    assert first.try_acquire() is False


def test_a_leader_that_loses_its_lease_is_told(api: client.ApiClient) -> None:
    leader = LeaderElector(api, "default", "sedna-gm", "gm-a", duration=2)
    leader.acquire()
    lost = threading.Event()
    leader.keep_renewing(lost.set)
    coordination = client.CoordinationV1Api(api)
    lease = coordination.read_namespaced_lease("sedna-gm", "default")
    # Another holder writes the lease (as if it took over while this GM was paused).
    coordination.patch_namespaced_lease(
        "sedna-gm",
        "default",
        {
            "metadata": {"resourceVersion": lease.metadata.resource_version},
            "spec": {"holderIdentity": "gm-b", "renewTime": "2999-01-01T00:00:00.000000Z"},
        },
    )
    assert lost.wait(5)
    assert not leader.is_leader.is_set()
    leader.stop()
