"""The GM's upstream path at rate: batches coalesced per object, each id applied once, records
merged key by key, one status write per batch and object, bad payloads dropped alone.

One ``sedna up``-like stack for the module (API server with its request log, GM, LCs of cloud0
and edge0, real Mosquitto and Redis); batches are handed to the GM's receiver as the bus would.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from itertools import count
from pathlib import Path
from typing import Any

import pytest
import redis

from apis.messages import WorkerMessage, WorkerOutput
from apiserver.audit import AUDIT_LOG_ENV, read_log
from broker import connect_redis, topics
from broker.client import BusClient
from broker.dedup import Dedup
from broker.envelope import Envelope
from broker.topics import UpTopic
from broker.upstream import Upstream, UpstreamReceiver
from gm.app import GMApp
from gm.kinds import JobPolicy, policy_for_kind
from gm.metrics import GMMetrics
from gm.records import Records
from gm.statuswriter import folded
from gm.upstream import UpstreamRecorder
from sedna_cli.stack import Stack, StackOptions
from tests.e2e import Cluster, models, status_metrics
from tests.services import wait_for

JI = "JointInferenceService"
FL = "FederatedLearningJob"
_SEQ = count(10**9)  # above any seq a real LC of this module reaches: always the newest


@pytest.fixture(scope="module")
def stack_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cluster, Path]]:
    """One stack for the module, its API server logging every request."""
    root = tmp_path_factory.mktemp("upstream")
    requests = root / "requests.jsonl"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(AUDIT_LOG_ENV, str(requests))
        stack = Stack(StackOptions(data_dir=root / "sedna", nodes=["cloud0", "edge0"]))
        stack.start()
    try:
        yield Cluster(stack, root / "kube-cache"), requests
    finally:
        for lc in stack.lcs.values():
            lc.runtime.remove_all()
        stack.stop()


def _sleeper(node: str) -> dict[str, Any]:
    return {
        "spec": {
            "nodeName": node,
            "restartPolicy": "Never",
            "containers": [{"name": "w", "image": "none", "command": ["sleep", "3600"]}],
        }
    }


def _service(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "sedna.io/v1alpha1",
        "kind": JI,
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "edgeWorker": {
                "model": {"name": "small-model"},
                "hardExampleMining": {"name": "IBT"},
                "template": _sleeper("edge0"),
            },
            "cloudWorker": {"model": {"name": "big-model"}, "template": _sleeper("cloud0")},
        },
    }


def _running(cluster: Cluster, plural: str, name: str, workers: int) -> None:
    wait_for(
        lambda: cluster.status(plural, name).get("active") == workers,
        60,
        f"the {workers} workers of {name} running",
    )


def _running_service(cluster: Cluster, name: str) -> GMApp:
    """Apply a service of two sleeping workers; the GM once both run."""
    cluster.apply(models())
    cluster.apply(_service(name))
    _running(cluster, "jointinferenceservices", name, 2)
    assert cluster.stack.gm is not None
    return cluster.stack.gm


def _message(kind: str, job: str, worker: str, node: str, **fields: Any) -> Upstream:
    payload = WorkerMessage(worker=worker, node=node, **fields).to_api()
    envelope = Envelope(seq=next(_SEQ), node=node, payload=payload)
    return Upstream(UpTopic(node, kind, "default", job), envelope)


def _report(job: str, number: int, hard: int | None = None) -> Upstream:
    info = {"inferenceNumber": number, **({"hardExampleNumber": hard} if hard else {})}
    return _message(
        JI, job, f"{job}-edge", "edge0", status="running", output=WorkerOutput(task_info=info)
    )


def _status_writes(requests: Path, name: str) -> int:
    return sum(
        1
        for r in read_log(requests)
        if r.verb == "patch" and r.subresource == "status" and r.name == name
    )


def _counter(cluster: Cluster, name: str, **labels: str) -> float:
    assert cluster.stack.gm is not None
    value = cluster.stack.gm.metrics.registry.get_sample_value(name, labels)
    return value or 0.0


def test_a_batch_is_coalesced_latest_value_wins_and_every_message_counts(
    stack_cluster: tuple[Cluster, Path],
) -> None:
    cluster, requests = stack_cluster
    gm = _running_service(cluster, "coalesce")
    counted = _counter(cluster, "sedna_gm_upstream_messages_total", kind=JI)
    writes = _status_writes(requests, "coalesce")
    # 200 reports of one worker, the hard example count only in some: each key's latest wins.
    batch = [_report("coalesce", n, hard=n // 10 if n % 50 == 25 else None) for n in range(1, 201)]
    assert gm.receiver.apply_batch(batch) == batch
    wait_for(
        lambda: status_metrics(cluster, "coalesce").get("inferenceNumber") == "200",
        30,
        "the last count in status",
    )
    assert status_metrics(cluster, "coalesce")["hardExampleNumber"] == "17"
    assert _counter(cluster, "sedna_gm_upstream_messages_total", kind=JI) == counted + 200
    time.sleep(1.0)  # a second write, if the GM made one, has been logged by now
    assert _status_writes(requests, "coalesce") == writes + 1
    # The record is one merged message, persisted: a GM restarted now finds the same values.
    again = Records(connect_redis(cluster.stack.redis.url))
    again.load()
    key = "jointinferenceservices.sedna.io/default/coalesce"
    recorded = {subject: message for subject, message, _ in again.of(key)}
    edge = recorded["coalesce-edge"]
    assert isinstance(edge, WorkerMessage) and edge.output is not None
    assert edge.output.task_info == {"inferenceNumber": 200, "hardExampleNumber": 17}
    assert edge.phase == "Running"  # the LC's phase change, merged with the reports after it


def _federated(name: str, trainers: int, data: Path) -> list[dict[str, Any]]:
    data.write_text("a,b\n1,2\n")
    dataset = {
        "apiVersion": "sedna.io/v1alpha1",
        "kind": "Dataset",
        "metadata": {"name": f"{name}-data", "namespace": "default"},
        "spec": {"url": str(data), "format": "csv", "nodeName": "edge0"},
    }
    model = {
        "apiVersion": "sedna.io/v1alpha1",
        "kind": "Model",
        "metadata": {"name": f"{name}-model", "namespace": "default"},
        "spec": {"url": str(data.parent / "global.npz"), "format": "npz"},
    }
    job = {
        "apiVersion": "sedna.io/v1alpha1",
        "kind": FL,
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "aggregationWorker": {
                "model": {"name": f"{name}-model"},
                "template": _sleeper("cloud0"),
            },
            "trainingWorkers": [
                {"dataset": {"name": f"{name}-data"}, "template": _sleeper("edge0")}
                for _ in range(trainers)
            ],
        },
    }
    return [dataset, model, job]


def test_phase_changes_of_many_workers_of_one_job_are_one_status_write(
    stack_cluster: tuple[Cluster, Path], tmp_path: Path
) -> None:
    cluster, requests = stack_cluster
    gm = cluster.stack.gm
    assert gm is not None
    cluster.apply(_federated("many", 6, tmp_path / "train.csv"))
    _running(cluster, "federatedlearningjobs", "many", 7)
    workers = {
        w["name"]: w["nodeName"] for w in cluster.status("federatedlearningjobs", "many")["workers"]
    }
    assert len(workers) == 7
    writes = _status_writes(requests, "many")
    batch = [
        _message(FL, "many", name, node, phase="Running", restart_count=3)
        for name, node in sorted(workers.items())
    ]
    assert gm.receiver.apply_batch(batch) == batch
    wait_for(
        lambda: all(
            w.get("restartCount") == 3
            for w in cluster.status("federatedlearningjobs", "many")["workers"]
        ),
        30,
        "every worker's restart count in status",
    )
    time.sleep(1.0)
    assert _status_writes(requests, "many") == writes + 1


def test_bad_payloads_in_a_batch_are_counted_and_do_not_hold_up_the_good_ones(
    stack_cluster: tuple[Cluster, Path],
) -> None:
    cluster, _ = stack_cluster
    gm = _running_service(cluster, "mixed")
    malformed = _counter(cluster, "sedna_gm_malformed_messages_total", source="payload")
    refused = _counter(
        cluster, "sedna_gm_upstream_refused_total", node="edge0", reason="worker-not-on-node"
    )
    topic = UpTopic("edge0", JI, "default", "mixed")
    bad = [
        Upstream(topic, Envelope(seq=next(_SEQ), node="edge0", payload=payload))
        for payload in (
            {"type": "worker"},  # no worker
            {"type": "nonsense", "worker": "mixed-edge"},
            {"worker": "mixed-edge", "restartCount": "many"},
        )
    ]
    stranger = _message(JI, "mixed", "not-placed-here", "edge0", phase="Running")
    batch = [_report("mixed", 7), bad[0], bad[1], stranger, bad[2], _report("mixed", 9)]
    assert gm.receiver.apply_batch(batch) == batch
    wait_for(
        lambda: status_metrics(cluster, "mixed").get("inferenceNumber") == "9",
        30,
        "the good reports in status",
    )
    assert _counter(cluster, "sedna_gm_malformed_messages_total", source="payload") == malformed + 3
    assert (
        _counter(
            cluster, "sedna_gm_upstream_refused_total", node="edge0", reason="worker-not-on-node"
        )
        == refused + 1
    )
    # Every id is marked applied, the dropped ones too: a copy of any of them is only acked.
    assert gm.receiver.apply_batch(batch) == []
    names = [w["name"] for w in cluster.status("jointinferenceservices", "mixed")["workers"]]
    assert names == ["mixed-cloud", "mixed-edge"]


# -- once across a GM crash mid-batch and redelivery (no stack: records, receiver, Redis) ------


class _Crash(Exception):
    """The GM process died here."""


def _gm(
    redis_url: str, bus: BusClient, prefix: str, applied: list[str]
) -> tuple[UpstreamReceiver, Records]:
    """A GM's upstream half as a restarted GM builds it: records loaded from Redis."""
    records = Records(connect_redis(redis_url), prefix=f"{prefix}:records")
    records.load()
    owner = {"apiVersion": "sedna.io/v1alpha1", "kind": JI, "name": "svc"}
    placed = {
        topics.worker_topic("edge0", "default", "svc-edge"): {
            "metadata": {"name": "svc-edge", "ownerReferences": [owner]}
        }
    }
    recorder = UpstreamRecorder(
        records, lambda info, ns, name: f"{info.plural}/{ns}/{name}", lambda key: None,
        GMMetrics(), placed.get,
    )  # fmt: skip
    dedup = Dedup(connect_redis(redis_url), key_prefix=f"{prefix}:seen")
    receiver = UpstreamReceiver(bus, dedup, recorder.apply)
    receiver.listeners.append(lambda batch: applied.extend(i.envelope.id for i in batch))
    return receiver, records


class _DiesAfterCommit:
    """The batch's writes, then the process dies before keeping or acknowledging anything."""

    def __init__(self, applied: Any) -> None:
        self._applied = applied

    def write(self, pipe: Any) -> None:
        self._applied.write(pipe)

    def done(self) -> None:
        raise _Crash


def test_a_message_id_is_applied_once_across_a_gm_crash_mid_batch_and_redelivery(
    redis_client: redis.Redis, shared_redis: Any, bus_client: Any, shared_mosquitto: Any,
    unique_name: str,
) -> None:  # fmt: skip
    bus = bus_client(f"gm-{unique_name}", shared_mosquitto.settings())
    applied: list[str] = []
    batch = [_report("svc", n) for n in range(1, 11)]
    key = "jointinferenceservices/default/svc"

    def latest(records: Records) -> Any:
        ((_, message, _),) = records.of(key)
        return message.output.task_info["inferenceNumber"]

    # 1. Killed after decoding and merging, before the commit: nothing is durable or marked.
    first, _ = _gm(shared_redis.url, bus, unique_name, applied)

    def die(ids: Any, writes: Any) -> None:
        raise _Crash

    first._dedup.commit = die  # type: ignore[method-assign]
    with pytest.raises(_Crash):
        first.apply_batch(batch[:6])
    assert applied == [] and redis_client.keys(f"{unique_name}:*") == []

    # 2. The LC re-sends; the restarted GM commits, then dies before it keeps or acks anything.
    second, _ = _gm(shared_redis.url, bus, unique_name, applied)
    apply = second._apply
    second._apply = lambda items: _DiesAfterCommit(apply(items))  # type: ignore[method-assign]
    with pytest.raises(_Crash):
        second.apply_batch(batch[:6])
    assert applied == []  # confirmed to nobody, but durable:

    # 3. Restarted again, it gets every copy once more, and the rest: only the rest is applied.
    third, records = _gm(shared_redis.url, bus, unique_name, applied)
    assert latest(records) == 6
    assert third.apply_batch(batch[:6] + batch) == batch[6:]
    assert latest(records) == 10
    # 4. A late redelivery of the lot, in any order, changes nothing.
    assert third.apply_batch(list(reversed(batch))) == []
    assert sorted(applied) == sorted(i.envelope.id for i in batch[6:])
    assert latest(_gm(shared_redis.url, bus, unique_name, applied)[1]) == 10


def test_records_merge_key_by_key_so_a_job_racing_to_completed_keeps_its_nodes(
    redis_client: redis.Redis, unique_name: str
) -> None:
    """The aggregator's final report carries only totals; its last round's report, with the
    nodes, may be recorded in the same batch (the job raced to Completed): status.nodes stay."""
    records = Records(redis_client, prefix=unique_name)
    key = "federatedlearningjobs.sedna.io/default/fl"
    nodes = [{"nodeName": "edge0", "numberOfSamples": 10, "lastRound": 2}]
    round_two = WorkerMessage(
        worker="fl-aggregation",
        node="cloud0",
        status="running",
        output=WorkerOutput(
            task_info={"currentRound": 2, "nodes": nodes, "sampleCounts": {"edge0": 10}},
            owner_info={"updateTime": "t"},
        ),
    )
    final = WorkerMessage(
        worker="fl-aggregation",
        node="cloud0",
        status="completed",
        output=WorkerOutput(task_info={"currentRound": 2, "totalSamples": 10}),
    )
    exited = WorkerMessage(worker="fl-aggregation", node="cloud0", phase="Succeeded")
    staged = records.stage()
    for seq, message in enumerate((round_two, final, exited), start=1):
        envelope = Envelope(seq=seq, node="cloud0", payload={}, sent_at=datetime.now(UTC))
        assert staged.add(key, envelope, message)
    assert staged.seal() == [] and staged.coalesced == 2

    def commit(pipe: Any) -> None:
        staged.write(pipe)

    Dedup(redis_client, key_prefix=f"{unique_name}:seen").commit([], commit)
    staged.done()
    policy = policy_for_kind(FL)
    assert isinstance(policy, JobPolicy)
    for reloaded in (records, Records(redis_client, prefix=unique_name)):
        if reloaded is not records:
            assert reloaded.load() == 1
        status = folded(policy, {}, reloaded.of(key), {"fl-aggregation": "aggregation"})
        assert status["nodes"] == nodes
        assert status["currentRound"] == 2
        ((_, message, _),) = reloaded.of(key)
        assert isinstance(message, WorkerMessage) and message.output is not None
        assert message.phase == "Succeeded" and message.status == "completed"
        assert message.output.owner_info == {"updateTime": "t"}
        assert message.output.task_info == {
            "currentRound": 2,
            "nodes": nodes,
            "sampleCounts": {"edge0": 10},
            "totalSamples": 10,
        }
