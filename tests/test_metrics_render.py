"""The GM's fast text rendering gives exactly what prometheus_client's ``generate_latest`` gives,
and the job collector's series carry the values of the objects it reads."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families

from gm.jobmetrics import JobStateCollector
from gm.metrics import GMMetrics, TextRenderer


class _Odd:
    """Families the fast path leaves to ``generate_latest``: a UTF-8 name, timestamps."""

    def collect(self) -> Iterator[Metric]:
        dotted = GaugeMetricFamily("odd.name", "a name outside the classic set", labels=["a"])
        dotted.add_metric(["x"], 1)
        stamped = GaugeMetricFamily("stamped", "with a timestamp", labels=["a"])
        stamped.add_metric(["y"], 2, timestamp=1700000000.5)
        yield from (dotted, stamped)


def _staged(kind: str, name: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "team"},
        "spec": {"dataset": {"name": "data"}},
        "status": {
            "round": 2,
            "stage": "Eval",
            "state": "Running",
            "roundData": {"train": 240, "eval": 60},
            "deploys": 1,
            "skippedDeploys": 0,
            "failedRounds": 1,
            "trainedModel": {"url": "/out/train/2/model.pkl"},
            "deployedModel": {"url": '/out/deploy/"1"\\model.pkl'},
            "lastDecision": {"round": 1, "deploy": True, "reason": "r", "metrics": {"p": 0.9}},
            "conditions": [
                {"type": "Waiting", "status": "True", "stage": "Train"},
                {"type": "Running", "status": "True", "stage": "Eval"},
            ],
            "workers": [
                {
                    "name": f"{name}-eval-2",
                    "nodeName": "cloud0",
                    "role": "eval",
                    "phase": "Running",
                },
                {"name": f"{name}-inference", "nodeName": "edge0", "role": "inference"},
                {
                    "name": f"{name}-train-2",
                    "nodeName": "edge0",
                    "role": "train",
                    "phase": "Failed",
                },
            ],
            "metrics": [
                {"key": "inferenceNumber", "value": "90"},
                {"key": "readyNumber", "value": "2"},
                {"key": "errorNumber", "value": "8"},
                {"key": "note", "value": "line\nbreak"},
            ],
        },
    }


def _registry() -> CollectorRegistry:
    gm = GMMetrics()
    gm.reconciles.labels(kind="Model", result="ok").inc(3)
    gm.reconcile_seconds.labels(kind="Model").observe(0.02)
    gm.refused.labels(node='e"dge\\0\n', reason="worker-not-on-node").inc()
    gm.node_online.labels(node="édge-ü").set(1)
    jobs = [
        ("IncrementalLearningJob", _staged("IncrementalLearningJob", "il")),
        ("LifelongLearningJob", _staged("LifelongLearningJob", "ll")),
    ]
    inputs = [
        (
            "Dataset",
            {
                "metadata": {"name": "data", "namespace": "team"},
                "spec": {"nodeName": "edge0"},
                "status": {"numberOfSamples": 300},
            },
        ),
        (
            "Model",
            {
                "metadata": {"name": "m", "namespace": "team"},
                "status": {
                    "metrics": [
                        {"key": "accuracy", "value": "0.93"},
                        {"key": "name", "value": "not a number"},
                    ]
                },
            },
        ),
    ]
    nodes = {"edge0": {"node-role.kubernetes.io/edge": ""}, "cloud0": {}}
    gm.registry.register(JobStateCollector(lambda: jobs, lambda: inputs, lambda: nodes))
    gm.registry.register(_Odd())  # type: ignore[arg-type]
    return gm.registry


def test_render_is_generate_latest_byte_for_byte() -> None:
    registry = _registry()
    render = TextRenderer()
    assert render(registry) == generate_latest(registry)
    assert render(registry) == generate_latest(registry)  # lines of unchanged samples reused


def test_a_changed_job_is_rendered_anew_and_a_deleted_one_goes() -> None:
    jobs = [
        (
            kind,
            {**_staged(kind, name), "metadata": {**_staged(kind, name)["metadata"], "uid": name}},
        )
        for kind, name in (("IncrementalLearningJob", "a"), ("IncrementalLearningJob", "b"))
    ]
    for _, job in jobs:
        job["metadata"]["resourceVersion"] = "1"
    registry = CollectorRegistry()
    registry.register(JobStateCollector(lambda: list(jobs)))
    render = TextRenderer()
    first = render(registry)
    assert first == generate_latest(registry)
    assert (
        b'sedna_incremental_round{kind="IncrementalLearningJob",name="a",namespace="team"} 2.0'
        in first
    )
    jobs[0][1]["status"] = {**jobs[0][1]["status"], "round": 3}
    assert render(registry) == first  # the same resourceVersion: the cached samples
    jobs[0][1]["metadata"]["resourceVersion"] = "2"
    second = render(registry)
    assert b'name="a",namespace="team"} 3.0' in second and second == generate_latest(registry)
    jobs.pop(1)
    assert b'name="b"' not in render(registry)


def test_the_job_series_carry_the_objects_values() -> None:
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(TextRenderer()(_registry()).decode())
        for s in f.samples
    }

    def value(series: str, /, **labels: str) -> float:
        matches = [
            v
            for (n, found), v in samples.items()
            if n == series and set(labels.items()) <= set(found)
        ]
        assert len(matches) == 1, (series, labels, matches)
        return matches[0]

    il = {"kind": "IncrementalLearningJob", "namespace": "team", "name": "il"}
    assert value("sedna_job_condition", **il, type="Running", status="True", stage="Eval") == 1
    assert value("sedna_job_tasks", **il, state="active") == 1
    assert value("sedna_job_tasks", **il, state="total") == 3
    assert value("sedna_job_task_info", **il, task="il-train-2", status="dead") == 1
    assert value("sedna_job_task_info", **il, task="il-eval-2", work="evaluating") == 1
    assert value("sedna_job_task_info", **il, task="il-inference", location="edge") == 1
    assert value("sedna_job_task_info", **il, task="il-eval-2", location="cloud") == 1
    assert value("sedna_job_inference", **il, count="done") == 90
    assert value("sedna_job_inference", **il, count="error") == 8
    assert value("sedna_job_inference_rate", **il) == 90.0
    assert value("sedna_incremental_stage", **il, stage="Eval", state="Running") == 1
    assert value("sedna_incremental_deploy_status", **il) == 1
    assert value("sedna_incremental_deploy_status", **il, status="Ok") == 1
    assert value("sedna_incremental_model_info", **il, model="trained") == 1
    assert value("sedna_incremental_model_info", **il, url='/out/deploy/"1"\\model.pkl') == 1
    assert value("sedna_incremental_eval_metric", **il, metric="p") == 0.9
    assert value("sedna_lifelong_failed_rounds", kind="LifelongLearningJob", name="ll") == 1
    dataset = {"kind": "Dataset", "namespace": "team", "name": "data", "node": "edge0"}
    assert value("sedna_dataset_samples", **dataset) == 300
    assert value("sedna_dataset_stage_samples", **dataset, job_name="il", stage="Train") == 240
    assert value("sedna_dataset_stage_samples", **dataset, job_name="ll", stage="Eval") == 60
    assert value("sedna_model_metric", kind="Model", name="m", key="accuracy") == 0.93
    assert not [k for k in samples if k[0] == "sedna_model_metric" and ("key", "name") in k[1]]
