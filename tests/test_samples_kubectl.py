"""The project's own CRDs on the embedded API server, driven by the real kubectl: every seed
sample applies unchanged and reads back whole; bad resources are refused naming the field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.apiserver_fixtures import Kubectl
from tests.test_apis import ALL_SAMPLES, SAMPLES, load_sample


@pytest.fixture(scope="module")
def kubectl(crds_kubectl: Kubectl) -> Kubectl:
    """The module's kubectl (the project's CRDs on the embedded server)."""
    return crds_kubectl


def _contains(stored: Any, given: Any, path: str = "") -> list[str]:
    """Where ``given`` is not contained in ``stored`` (dict subset, lists equal in length)."""
    if isinstance(given, dict):
        if not isinstance(stored, dict):
            return [f"{path}: not an object"]
        return [m for k, v in given.items() for m in _contains(stored.get(k), v, f"{path}.{k}")]
    if isinstance(given, list):
        if not isinstance(stored, list) or len(stored) != len(given):
            return [f"{path}: list differs"]
        problems = []
        for index, (item, expected) in enumerate(zip(stored, given, strict=True)):
            problems += _contains(item, expected, f"{path}[{index}]")
        return problems
    return [] if stored == given else [f"{path}: {stored!r} != {given!r}"]


@pytest.mark.parametrize("name", ALL_SAMPLES)
def test_seed_sample_applies_unchanged_and_reads_back_whole(kubectl: Kubectl, name: str) -> None:
    path = SAMPLES / name
    assert "created" in kubectl.ok("apply", "-f", str(path))
    sample = load_sample(name)
    kind = f"{sample['kind'].lower()}.{sample['apiVersion'].split('/')[0]}"
    stored = json.loads(kubectl.ok("get", kind, sample["metadata"]["name"], "-o", "json"))
    assert _contains(stored, sample) == []
    assert "unchanged" in kubectl.ok("apply", "-f", str(path))


def test_get_by_every_name_with_printer_columns(kubectl: Kubectl) -> None:
    kubectl.ok("apply", "-f", str(SAMPLES))
    for name in ("datasets", "dataset", "Dataset", "datasets.sedna.io"):
        table = kubectl.ok("get", name)
        assert table.split("\n")[0].split() == ["NAME", "NODENAME", "FORMAT", "SAMPLES", "AGE"]
        assert "incremental-dataset" in table
    assert "NAMESPACE" in kubectl.ok("get", "il", "-A")
    assert kubectl.ok("get", "federatedlearningtasks").split("\n")[0].split() == [
        "NAME",
        "STATUS",
        "ROUND",
        "AGE",
    ]
    assert "helmet-detection-demo" in kubectl.ok("get", "neptunejointinferenceservices")
    for name in ("ji", "jis", "jointinferenceservice", "jointinferenceservices"):
        assert "neptune.io" not in kubectl.ok("get", name, "-A", "-o", "name"), name
    daemonsets = kubectl.ok("get", "ds", "-A", "-o", "name")  # ds is DaemonSets, as everywhere
    assert "dataset" not in daemonsets
    assert "daemonsets" in kubectl.ok("api-resources", "--api-group=apps", "-o", "name")
    everything = kubectl.ok("get", "sedna", "-A", "-o", "name")
    assert "model.sedna.io/deploy-model" in everything


def _invalid(kubectl: Kubectl, manifest: dict[str, Any]) -> str:
    return kubectl.fails("apply", "-f", "-", stdin=yaml.safe_dump(manifest))


def test_missing_required_field_is_refused_and_nothing_is_stored(kubectl: Kubectl) -> None:
    bad = {
        "apiVersion": "sedna.io/v1alpha1",
        "kind": "JointInferenceService",
        "metadata": {"name": "bad-jis"},
        "spec": {"edgeWorker": {"model": {"name": "m"}}},
    }
    error = _invalid(kubectl, bad)
    assert "spec.cloudWorker: Required value" in error
    assert "spec.edgeWorker.template: Required value" in error
    assert kubectl.run("get", "ji", "bad-jis").returncode != 0


def test_wrong_type_and_unknown_field_are_refused_naming_the_field(kubectl: Kubectl) -> None:
    base = load_sample("quickstart_dataset.yaml")
    wrong = json.loads(json.dumps(base))
    wrong["metadata"]["name"] = "typed"
    wrong["spec"]["url"] = 42
    assert "spec.url" in _invalid(kubectl, wrong)
    unknown = json.loads(json.dumps(base))
    unknown["metadata"]["name"] = "unknown"
    unknown["spec"]["bogus"] = True
    assert 'unknown field "spec.bogus"' in _invalid(kubectl, unknown)
    for name in ("typed", "unknown"):
        assert kubectl.run("get", "datasets", name).returncode != 0


def test_unknown_kind_is_refused(kubectl: Kubectl, tmp_path: Path) -> None:
    error = _invalid(
        kubectl,
        {"apiVersion": "sedna.io/v1alpha1", "kind": "NoSuchKind", "metadata": {"name": "x"}},
    )
    assert 'no matches for kind "NoSuchKind"' in error


@pytest.mark.parametrize(
    ("where", "value", "field"),
    [
        (("trainSpec", "trigger", "condition", "operator"), "=>", "condition.operator"),
        (("trainSpec", "trigger", "timer", "start"), "25:00", "timer.start"),
        (("trainSpec", "trigger", "checkPeriodSeconds"), -5, "checkPeriodSeconds"),
        (("deploySpec", "trigger", "condition", "metric"), "precision delta", "condition.metric"),
        (("deploySpec", "model", "pollPeriodSeconds"), 0, "pollPeriodSeconds"),
    ],
)
def test_malformed_trigger_is_refused_naming_the_field(
    kubectl: Kubectl, where: tuple[str, ...], value: object, field: str
) -> None:
    job = load_sample("quickstart_incrementallearningjob.yaml")
    job["metadata"]["name"] = "bad-trigger"
    node = job["spec"]
    for key in where[:-1]:
        node = node.setdefault(key, {})
    node[where[-1]] = value
    error = _invalid(kubectl, job)
    assert f"spec.{'.'.join(where)}" in error and field in error
    assert kubectl.run("get", "il", "bad-trigger").returncode != 0


def test_trigger_end_of_day_and_aliases_are_accepted(kubectl: Kubectl) -> None:
    job = load_sample("quickstart_incrementallearningjob.yaml")
    job["metadata"]["name"] = "end-of-day"
    job["spec"]["trainSpec"]["trigger"]["timer"] = {"start": "22:00", "end": "24:00"}
    job["spec"]["trainSpec"]["trigger"]["condition"]["operator"] = "ge"
    kubectl.ok("apply", "-f", "-", stdin=yaml.safe_dump(job))
    table = kubectl.ok("get", "il", "end-of-day")
    assert table.split("\n")[0].split() == ["NAME", "STAGE", "STATE", "ROUND", "AGE"]
