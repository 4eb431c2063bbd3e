"""The kube-state-metrics configuration: generated, not stale, and reading only real CRD paths."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from apis.ksm import ksm_config, ksm_yaml, unknown_paths
from sedna_cli.ksm import DEFAULT_FILE
from sedna_cli.main import main

ROOT = Path(__file__).resolve().parent.parent
CHECKED_IN = ROOT / DEFAULT_FILE


def _crds() -> list[dict[str, Any]]:
    """The CRDs as checked in (not regenerated), the schema a real cluster serves."""
    return [
        yaml.safe_load(path.read_text())
        for path in sorted((ROOT / "deploy" / "crds").glob("*.yaml"))
    ]


def _resource(config: dict[str, Any], group: str, kind: str) -> dict[str, Any]:
    return next(
        r
        for r in config["spec"]["resources"]
        if (r["groupVersionKind"]["group"], r["groupVersionKind"]["kind"]) == (group, kind)
    )


def _series(resource: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f"{resource['metricNamePrefix']}_{m['name']}": m for m in resource["metrics"]}


def test_the_checked_in_config_is_not_stale(capsys: pytest.CaptureFixture[str]) -> None:
    assert CHECKED_IN.read_text() == ksm_yaml(), "regenerate it with: make crds"
    assert main(["ksm-config", "--check", str(CHECKED_IN)]) == 0


def test_check_fails_on_a_stale_or_missing_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stale = tmp_path / "sedna-crs.yaml"
    stale.write_text(ksm_yaml().replace("numberOfSamples", "numberOfSample"))
    assert main(["ksm-config", "--check", str(stale)]) == 1
    assert str(stale) in capsys.readouterr().err
    assert main(["ksm-config", "--check", str(tmp_path / "absent.yaml")]) == 1
    assert main(["ksm-config", "--write", str(tmp_path / "new" / "ksm.yaml")]) == 0
    assert main(["ksm-config", "--check", str(tmp_path / "new" / "ksm.yaml")]) == 0


def test_every_crd_kind_has_a_resource_entry() -> None:
    config = yaml.safe_load(CHECKED_IN.read_text())
    assert config["kind"] == "CustomResourceStateMetrics"
    served = {(c["spec"]["group"], c["spec"]["names"]["kind"]) for c in _crds()}
    configured = {
        (r["groupVersionKind"]["group"], r["groupVersionKind"]["kind"])
        for r in config["spec"]["resources"]
    }
    assert configured == served
    assert ("neptune.io", "JointInferenceService") in configured  # the legacy kinds too
    assert ("edgeai.io", "FederatedLearningTask") in configured


def test_every_path_the_config_reads_exists_in_the_crd_schema() -> None:
    config = yaml.safe_load(CHECKED_IN.read_text())
    assert unknown_paths(config, _crds()) == []


@pytest.mark.parametrize(
    ("metric", "where", "field"),
    [
        ("number_of_samples", "path", ["status", "numberOfSample"]),
        ("worker_restart_count", "valueFrom", ["restartCounts"]),
        ("worker_info", "labelsFromPath", {"worker": ["nmae"]}),
    ],
)
def test_a_misspelt_path_is_reported(metric: str, where: str, field: Any) -> None:
    config = copy.deepcopy(ksm_config())
    kind = "Dataset" if metric == "number_of_samples" else "IncrementalLearningJob"
    entry = next(m for m in _resource(config, "sedna.io", kind)["metrics"] if m["name"] == metric)
    body = next(v for k, v in entry["each"].items() if k != "type")
    body[where] = field
    problems = unknown_paths(config, _crds())
    assert len(problems) == 1
    assert problems[0].startswith(f"sedna.io/{kind}: {metric}: ")


def test_a_misspelt_resource_label_path_and_an_unknown_kind_are_reported() -> None:
    config = copy.deepcopy(ksm_config())
    _resource(config, "sedna.io", "Model")["labelsFromPath"]["name"] = ["metadata", "nam"]
    config["spec"]["resources"].append({**_resource(config, "sedna.io", "Dataset")})
    config["spec"]["resources"][-1]["groupVersionKind"] = {
        "group": "sedna.io",
        "version": "v1alpha1",
        "kind": "Datasets",
    }
    assert unknown_paths(config, _crds()) == [
        "sedna.io/Model: labelsFromPath: metadata.nam",
        "sedna.io/Datasets: no such CRD",
    ]


def test_series_are_named_per_object_with_kind_namespace_and_name_labels() -> None:
    config = yaml.safe_load(CHECKED_IN.read_text())
    names: set[str] = set()
    for resource in config["spec"]["resources"]:
        assert resource["commonLabels"] == {"kind": resource["groupVersionKind"]["kind"]}
        assert resource["labelsFromPath"] == {
            "namespace": ["metadata", "namespace"],
            "name": ["metadata", "name"],
        }
        series = _series(resource)
        assert all(re.fullmatch(r"sedna_[a-z]+_[a-z_]+", name) for name in series), series
        assert not names & set(series), "a series name is used by two kinds"
        names |= set(series)


def test_the_seed_rows_a_cluster_can_read_from_status_have_series() -> None:
    config = ksm_config()
    staged = _series(_resource(config, "sedna.io", "LifelongLearningJob"))
    assert staged["sedna_lifelonglearningjob_stage"]["each"]["stateSet"]["list"] == [
        "Train",
        "Eval",
        "Deploy",
    ]
    assert "Running" in staged["sedna_lifelonglearningjob_state"]["each"]["stateSet"]["list"]
    assert staged["sedna_lifelonglearningjob_round"]["each"]["gauge"]["path"] == [
        "status",
        "round",
    ]
    worker_info = staged["sedna_lifelonglearningjob_worker_info"]["each"]["info"]
    assert {"worker", "node", "phase"} <= set(worker_info["labelsFromPath"])
    dataset = _series(_resource(config, "sedna.io", "Dataset"))
    assert "sedna_dataset_number_of_samples" in dataset
    model = _series(_resource(config, "sedna.io", "Model"))
    assert model["sedna_model_metric"]["each"]["gauge"]["labelsFromPath"] == {"key": ["key"]}
    federated = _series(_resource(config, "edgeai.io", "FederatedLearningTask"))
    assert "sedna_federatedlearningtask_current_round" in federated
