"""Pure parts of the GM: work queue, worker planning, status rules, upstream reports."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

from apis import parse_resource, to_canonical
from apis.base import OwnerReference
from apis.kinds import ObjectRef, WorkerStatus
from apis.messages import WorkerMessage, WorkerOutput
from gm.informer import Informer
from gm.kinds import JobPolicy, policy_for_kind
from gm.kinds.federated_learning import federated_learning_status
from gm.kinds.joint_inference import joint_inference_status
from gm.plan import DesiredWorker, PlanContext, PlanError, allocate_port
from gm.status import same_status
from gm.workqueue import WorkQueue
from tests.test_apis import load_sample


def _policy(kind: str) -> JobPolicy:
    policy = policy_for_kind(kind)
    assert isinstance(policy, JobPolicy)
    return policy


def plan_workers(resource: Any, owner: OwnerReference, ctx: PlanContext) -> list[DesiredWorker]:
    """The workers the resource's kind policy plans (no status yet)."""
    return _policy(resource.KIND).plan(resource, owner, ctx, {})


def apply_worker_message(
    kind: str, status: dict[str, Any], message: WorkerMessage, role: str | None, stamp: str
) -> dict[str, Any]:
    """The status after the kind policy folds one worker message in."""
    return _policy(kind).fold(status, message, role, stamp)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_queue_deduplicates_waiting_keys() -> None:
    queue = WorkQueue()
    queue.add("a")
    queue.add("a")
    queue.add("b")
    assert [queue.get(0.01), queue.get(0.01), queue.get(0.01)] == ["a", "b", None]


def test_key_added_while_processing_runs_again_after_done_not_twice_at_once() -> None:
    queue = WorkQueue()
    queue.add("a")
    assert queue.get(0.01) == "a"
    queue.add("a")
    assert queue.get(0.01) is None  # never handed out while in progress
    queue.done("a")
    assert queue.get(0.01) == "a"


def test_rate_limited_backoff_doubles_and_forget_resets() -> None:
    clock = FakeClock()
    queue = WorkQueue(base_delay=1.0, max_delay=5.0, clock=clock)
    assert [queue.add_rate_limited("k") for _ in range(4)] == [1.0, 2.0, 4.0, 5.0]
    queue.forget("k")
    assert queue.failures("k") == 0


def test_delayed_key_is_released_when_due() -> None:
    clock = FakeClock()
    queue = WorkQueue(clock=clock)
    queue.add_after("k", 10)
    assert queue.get(timeout=0) is None
    clock.now = 10.5
    assert queue.get(timeout=0) == "k"


def test_spaced_adds_within_the_interval_are_one_run_at_its_end() -> None:
    clock = FakeClock()
    queue = WorkQueue(clock=clock)
    queue.add_spaced("k", 1.0)  # not run lately: at once
    assert queue.get(timeout=0) == "k"
    queue.done("k")
    clock.now = 0.25
    queue.add_spaced("k", 1.0)
    queue.add_spaced("k", 1.0)
    assert queue.get(timeout=0) is None  # started 0.25 s ago: waits for the interval
    clock.now = 1.0
    assert queue.get(timeout=0) == "k"
    queue.done("k")
    assert queue.get(timeout=0) is None  # the two adds were one run
    clock.now = 2.5
    queue.add_spaced("k", 1.0)
    assert queue.get(timeout=0) == "k"


def test_shutdown_wakes_waiters() -> None:
    queue = WorkQueue()
    result: list[str | None] = []
    thread = threading.Thread(target=lambda: result.append(queue.get()))
    thread.start()
    queue.shutdown()
    thread.join(2)
    assert result == [None]


OWNER = OwnerReference(
    api_version="neptune.io/v1alpha1",
    kind="JointInferenceService",
    name="helmet-detection-demo",
    uid="u1",
)


def _ji_context(**overrides: object) -> PlanContext:
    values: dict[str, object] = {
        "model_urls": {"small-model": "/m/small.pkl", "big-model": "/m/big.pkl"},
        "node_addresses": {"solar-corona-cloud": "10.0.0.5"},
        "ports": {"cloud": 21000},
    }
    values.update(overrides)
    return PlanContext.model_validate(values)


def test_joint_inference_workers_get_sedna_environment() -> None:
    service = to_canonical(parse_resource(load_sample("neptune_jointinferenceservice.yaml")))
    cloud, edge = plan_workers(service, OWNER, _ji_context())
    assert (cloud.node, edge.node) == ("solar-corona-cloud", "edge0")
    assert cloud.env["MODEL_URL"] == "/m/big.pkl"
    assert cloud.env["BIG_MODEL_BIND_PORT"] == "21000"
    assert edge.env["BIG_MODEL_IP"] == "10.0.0.5"
    assert edge.env["BIG_MODEL_PORT"] == "21000"
    assert edge.env["HEM_NAME"] == "IBT"
    assert json.loads(edge.env["HEM_PARAMETERS"]) == []
    assert edge.env["JOB_NAME"] == edge.env["SERVICE_NAME"] == "helmet-detection-demo"
    assert edge.env["WORKER_NAME"] == "helmet-detection-demo-edge"
    pod = edge.pod()
    env = {e["name"]: e["value"] for e in pod["spec"]["containers"][0]["env"]}
    assert env["nms_threshold"] == "0.6"  # the template's own parameters stay
    assert env["HEM_NAME"] == "IBT"
    assert pod["spec"]["nodeName"] == "edge0"
    assert pod["metadata"]["ownerReferences"][0]["uid"] == "u1"


def test_missing_model_or_address_is_a_plan_error_naming_it() -> None:
    service = to_canonical(parse_resource(load_sample("neptune_jointinferenceservice.yaml")))
    with pytest.raises(PlanError, match="model 'big-model' not found"):
        plan_workers(service, OWNER, _ji_context(model_urls={"small-model": "/m"}))
    with pytest.raises(PlanError, match="solar-corona-cloud"):
        plan_workers(service, OWNER, _ji_context(node_addresses={}))
    assert plan_workers(
        service, OWNER, _ji_context(node_addresses={}, default_node_address="127.0.0.1")
    )[1].env["BIG_MODEL_IP"] == ("127.0.0.1")


def test_federated_workers_share_token_and_aggregator_address() -> None:
    job = to_canonical(parse_resource(load_sample("edgeai_federatedlearningtask.yaml")))
    ctx = PlanContext(
        model_urls={"model-demo1": "/m/global.npz"},
        dataset_urls={f"dataset-demo{i}": f"/d/{i}.txt" for i in range(3)},
        default_node_address="127.0.0.1",
        ports={"aggregation": 22000},
        job_token="t0k",
    )
    agg, *trainers = plan_workers(job, OWNER, ctx)
    assert agg.env["AGG_BIND_PORT"] == "22000"
    assert agg.env["PARTICIPANTS_COUNT"] == "3"
    assert [t.env["TRAIN_DATASET_URL"] for t in trainers] == ["/d/0.txt", "/d/1.txt", "/d/2.txt"]
    assert {t.env["AGG_PORT"] for t in trainers} == {"22000"}
    # The aggregator listens on the address its trainers are given, not on every interface.
    assert agg.env["AGG_BIND_IP"] == "127.0.0.1"
    assert {t.env["AGG_IP"] for t in trainers} == {agg.env["AGG_BIND_IP"]}
    assert {t.env["SEDNA_JOB_TOKEN"] for t in [agg, *trainers]} == {"t0k"}
    assert [t.node for t in trainers] == ["edge0", "edge1", "edge2"]
    assert "BASE_MODEL_URL" not in agg.env


def test_federated_pretrained_model_reaches_the_aggregator() -> None:
    job = to_canonical(parse_resource(load_sample("edgeai_federatedlearningtask.yaml")))
    job = job.model_copy(
        update={"spec": job.spec.model_copy(update={"pretrained_model": ObjectRef(name="base")})}
    )
    ctx = PlanContext(
        model_urls={"model-demo1": "/m/global.npz", "base": "/m/pretrained.npz"},
        dataset_urls={f"dataset-demo{i}": f"/d/{i}.txt" for i in range(3)},
        default_node_address="127.0.0.1",
        ports={"aggregation": 22000},
        job_token="t0k",
    )
    agg = plan_workers(job, OWNER, ctx)[0]
    assert agg.env["BASE_MODEL_URL"] == "/m/pretrained.npz"
    missing = ctx.model_copy(update={"model_urls": {"model-demo1": "/m/global.npz"}})
    with pytest.raises(PlanError, match="model 'base' not found"):
        plan_workers(job, OWNER, missing)


def test_allocate_port_skips_used_ports_and_is_stable() -> None:
    first = allocate_port(set(), "uid/cloud")
    assert allocate_port(set(), "uid/cloud") == first
    assert allocate_port({first}, "uid/cloud") != first


def _worker(name: str, phase: str, role: str) -> WorkerStatus:
    return WorkerStatus(name=name, phase=phase, role=role)


def test_joint_inference_conditions_append_only_on_change() -> None:
    pending = joint_inference_status({}, [_worker("a", "Running", "edge")], 2, "t1")
    assert [c["type"] for c in pending["conditions"]] == ["Pending"]
    running = joint_inference_status(
        pending, [_worker("a", "Running", "edge"), _worker("b", "Running", "cloud")], 2, "t2"
    )
    assert [c["type"] for c in running["conditions"]] == ["Pending", "Running"]
    again = joint_inference_status(
        running, [_worker("a", "Running", "edge"), _worker("b", "Running", "cloud")], 2, "t3"
    )
    assert len(again["conditions"]) == 2
    assert again["conditions"][-1]["lastHeartbeatTime"] == "t3"
    assert same_status(running, again)
    failed = joint_inference_status(
        again, [_worker("a", "Failed", "edge"), _worker("b", "Running", "cloud")], 2, "t4"
    )
    assert (failed["conditions"][-1]["type"], failed["active"], failed["failed"]) == (
        "Failed",
        1,
        1,
    )


def test_federated_job_follows_its_aggregator_and_survives_a_failed_trainer() -> None:
    workers = [
        _worker("j-aggregation", "Running", "aggregation"),
        _worker("j-training-0", "Running", "training"),
        _worker("j-training-1", "Failed", "training"),
    ]
    running = federated_learning_status({}, workers, 3, "t1")
    assert (running["phase"], running["failed"]) == ("Running", 1)
    workers[0] = _worker("j-aggregation", "Succeeded", "aggregation")
    done = federated_learning_status(running, workers, 3, "t2")
    assert done["phase"] == "Succeeded"
    assert done["completionTime"] == "t2"
    assert done["conditions"][-1]["type"] == "Complete"
    # A terminal phase never changes again.
    workers[0] = _worker("j-aggregation", "Failed", "aggregation")
    assert federated_learning_status(done, workers, 3, "t3")["phase"] == "Succeeded"


def test_edge_report_fills_joint_inference_metrics() -> None:
    message = WorkerMessage(
        worker="svc-edge",
        phase="Running",
        output=WorkerOutput(task_info={"inferenceNumber": 1000, "hardExampleNumber": 100}),
    )
    status = apply_worker_message("JointInferenceService", {}, message, "edge", "t")
    assert {m["key"]: m["value"] for m in status["metrics"]} == {
        "inferenceNumber": "1000",
        "hardExampleNumber": "100",
    }
    assert status["workers"] == [
        {"name": "svc-edge", "phase": "Running", "role": "edge", "lastUpdateTime": "t"}
    ]


def test_aggregator_report_fills_rounds_and_nodes() -> None:
    message = WorkerMessage(
        worker="job-aggregation",
        output=WorkerOutput.model_validate(
            {
                "taskInfo": {
                    "currentRound": 3,
                    "aggregationCount": 3,
                    "nodes": [{"nodeName": "edge0", "numberOfSamples": 500}],
                },
                "models": [{"url": "/out/round-3.npz", "format": "npz"}],
            }
        ),
    )
    status = apply_worker_message("FederatedLearningJob", {}, message, "aggregation", "t")
    assert (status["currentRound"], status["aggregationCount"]) == (3, 3)
    assert status["nodes"] == [{"nodeName": "edge0", "numberOfSamples": 500}]
    assert status["outputModel"] == "/out/round-3.npz"


def test_service_keeps_running_when_its_edge_stream_finished() -> None:
    workers = [_worker("s-edge", "Succeeded", "edge"), _worker("s-cloud", "Running", "cloud")]
    status = joint_inference_status({}, workers, 2, "t")
    assert status["conditions"][-1]["type"] == "Running"
    assert (status["active"], status["failed"]) == (1, 0)


def test_planning_inputs_ignore_status_writes_but_not_urls_or_addresses() -> None:
    from gm.controller import planning_inputs

    dataset = {
        "metadata": {"name": "d", "namespace": "default"},
        "spec": {"url": "/d.txt", "format": "txt", "nodeName": "edge0"},
    }
    counted = {**dataset, "status": {"numberOfSamples": 42}}
    moved = {**dataset, "spec": {**dataset["spec"], "url": "/other.txt"}}
    assert planning_inputs(counted) == planning_inputs(dataset)
    assert planning_inputs(moved) != planning_inputs(dataset)
    node = {"metadata": {"name": "edge0"}, "status": {"conditions": [{"type": "Ready"}]}}
    heartbeat = {**node, "status": {"conditions": [{"type": "Ready", "status": "False"}]}}
    addressed = {**node, "status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.1"}]}}
    assert planning_inputs(heartbeat) == planning_inputs(node)
    assert planning_inputs(addressed) != planning_inputs(node)


def test_job_state_metrics_come_from_the_watched_objects() -> None:
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    from gm.jobmetrics import JobStateCollector

    objects: list[tuple[str, dict[str, object]]] = [
        (
            "FederatedLearningJob",
            {
                "metadata": {"name": "fl", "namespace": "team"},
                "status": {
                    "phase": "Running",
                    "active": 4,
                    "failed": 0,
                    "currentRound": 7,
                    "aggregationCount": 7,
                    "nodes": [{"nodeName": "edge0", "numberOfSamples": 406}],
                },
            },
        ),
        ("JointInferenceService", {"metadata": {"name": "ji"}, "status": {"active": 2}}),
        ("IncrementalLearningJob", {"metadata": {"name": "il", "namespace": "x"}}),
    ]
    registry = CollectorRegistry()
    registry.register(JobStateCollector(lambda: list(objects)))
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(generate_latest(registry).decode())
        for sample in family.samples
    }
    fl = (("kind", "FederatedLearningJob"), ("name", "fl"), ("namespace", "team"))
    assert samples[("sedna_job_phase", tuple(sorted((*fl, ("phase", "Running")))))] == 1
    assert samples[("sedna_job_workers", tuple(sorted((*fl, ("state", "active")))))] == 4
    assert samples[("sedna_federated_current_round", fl)] == 7
    assert samples[("sedna_federated_aggregations", fl)] == 7
    assert samples[("sedna_federated_node_samples", (*fl, ("node", "edge0")))] == 406
    ji = (("kind", "JointInferenceService"), ("name", "ji"), ("namespace", "default"))
    assert samples[("sedna_job_workers", tuple(sorted((*ji, ("state", "active")))))] == 2
    # A job without status yet has no series; later scrapes see changes as they happen.
    assert not any(labels and ("name", "il") in labels for _, labels in samples)
    objects[0][1]["status"]["currentRound"] = 8  # type: ignore[index]
    assert (
        b'sedna_federated_current_round{kind="FederatedLearningJob",name="fl",namespace="team"} 8.0'
        in generate_latest(registry)
    )


def test_the_watch_event_of_the_gms_own_status_write_reconciles_again() -> None:
    """A status the GM wrote can be one step of a sequence (a stage done, then the next
    stage's directive): its watch event must reach the handler, as any other change does."""
    events: list[tuple[str, str]] = []
    informer = Informer(
        "t",
        list,
        lambda t, o: events.append((t, o["metadata"]["resourceVersion"])),
        None,  # type: ignore[arg-type]
    )

    def obj(version: str) -> dict[str, Any]:
        return {"metadata": {"namespace": "ns", "name": "a", "resourceVersion": version}}

    informer._apply("ADDED", obj("1"))
    informer.observe(obj("2"))  # the answer of the GM's own write
    assert informer.get("ns/a") == obj("2") and events == [("ADDED", "1")]
    informer._apply("MODIFIED", obj("2"))  # its watch event
    assert events == [("ADDED", "1"), ("MODIFIED", "2")]
