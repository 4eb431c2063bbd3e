"""The API models: seed samples parse, legacy kinds convert, CRDs are structural and fresh."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from apis import (
    KINDS,
    Dataset,
    FederatedLearningJob,
    IncrementalLearningJob,
    JointInferenceService,
    crd_manifests,
    parse_resource,
    to_canonical,
)
from apis.legacy import LegacyConversionError
from sedna_cli.crds import stale_files

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "deploy" / "samples"


class Yaml12Loader(yaml.SafeLoader):
    """PyYAML without YAML 1.1's base-60 numbers, as kubectl reads files (``02:00`` is a str)."""


_CLOCK = re.compile(r"^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$")
Yaml12Loader.yaml_implicit_resolvers = {
    first: [("tag:yaml.org,2002:str", _CLOCK), *resolvers]
    if first is not None and first in "+-0123456789"
    else list(resolvers)
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_sample(name: str) -> dict[str, Any]:
    return yaml.load((SAMPLES / name).read_text(), Loader=Yaml12Loader)


ALL_SAMPLES = sorted(p.name for p in SAMPLES.glob("*.yaml"))


def test_every_seed_sample_is_present() -> None:
    assert len(ALL_SAMPLES) == 6


@pytest.mark.parametrize("name", ALL_SAMPLES)
def test_seed_sample_parses_and_keeps_every_field(name: str) -> None:
    raw = load_sample(name)
    obj = parse_resource(raw)
    dumped = obj.model_dump(mode="json", by_alias=True, exclude_unset=True)
    assert dumped == raw


def test_timer_of_the_quick_start_stays_a_string() -> None:
    job = parse_resource(load_sample("quickstart_incrementallearningjob.yaml"))
    assert isinstance(job, IncrementalLearningJob)
    assert job.spec.train_spec.trigger is not None
    assert job.spec.train_spec.trigger.timer is not None
    assert (job.spec.train_spec.trigger.timer.start, job.spec.train_spec.trigger.timer.end) == (
        "02:00",
        "20:00",
    )
    assert job.spec.deploy_spec.hard_example_mining is not None
    assert job.spec.deploy_spec.hard_example_mining.name == "IBT"


def test_legacy_joint_inference_converts_to_a_template_running_the_boot_script() -> None:
    legacy = parse_resource(load_sample("neptune_jointinferenceservice.yaml"))
    canonical = to_canonical(legacy)
    assert isinstance(canonical, JointInferenceService)
    assert canonical.api_version == "sedna.io/v1alpha1"
    edge = canonical.spec.edge_worker
    assert edge.hard_example_mining.name == "IBT"
    assert edge.model.name == "small-model"
    assert edge.template.spec.node_name == "edge0"
    container = edge.template.spec.containers[0]
    assert container.args == ["edge_inference.py"]
    assert container.command is None
    assert container.working_dir == "/code"
    assert [(e.name, e.value) for e in container.env or []] == [("nms_threshold", "0.6")]
    cloud = canonical.spec.cloud_worker
    assert cloud.template.spec.node_name == "solar-corona-cloud"
    assert cloud.template.spec.containers[0].args == ["cloud_inference.py"]
    assert canonical.metadata.annotations["sedna.io/converted-from"] == (
        "neptune.io/v1alpha1/JointInferenceService"
    )


def test_legacy_federated_task_takes_the_dataset_from_the_worker_spec() -> None:
    canonical = to_canonical(parse_resource(load_sample("edgeai_federatedlearningtask.yaml")))
    assert isinstance(canonical, FederatedLearningJob)
    assert [w.dataset.name for w in canonical.spec.training_workers] == [
        "dataset-demo0",
        "dataset-demo1",
        "dataset-demo2",
    ]
    assert [w.template.spec.node_name for w in canonical.spec.training_workers] == [
        "edge0",
        "edge1",
        "edge2",
    ]
    agg = canonical.spec.aggregation_worker
    env = {e.name: e.value for e in agg.template.spec.containers[0].env or []}
    assert env == {"exit_round": "3"}
    assert agg.model.name == "model-demo1"


def test_legacy_federated_task_without_dataset_is_refused_naming_the_worker() -> None:
    raw = load_sample("edgeai_federatedlearningtask.yaml")
    del raw["spec"]["trainingWorkers"][1]["workerSpec"]["dataset"]
    with pytest.raises(LegacyConversionError, match=r"trainingWorkers\[work1\]: dataset"):
        to_canonical(parse_resource(raw))


def test_canonical_objects_are_returned_unchanged() -> None:
    dataset = parse_resource(load_sample("quickstart_dataset.yaml"))
    assert to_canonical(dataset) is dataset


def test_missing_required_field_is_named() -> None:
    raw = load_sample("quickstart_dataset.yaml")
    del raw["spec"]["url"]
    with pytest.raises(ValidationError, match=r"spec\.url"):
        Dataset.model_validate(raw)


def _walk(schema: dict[str, Any], path: str) -> list[str]:
    """Structural-schema violations below ``schema`` (Kubernetes' rules for CRDs)."""
    problems = []
    if "$ref" in schema or "anyOf" in schema or "allOf" in schema:
        problems.append(f"{path}: $ref/anyOf/allOf not allowed")
    if "type" not in schema and not schema.get("x-kubernetes-preserve-unknown-fields"):
        problems.append(f"{path}: no type")
    if "properties" in schema and "additionalProperties" in schema:
        problems.append(f"{path}: properties and additionalProperties together")
    for name, sub in schema.get("properties", {}).items():
        problems += _walk(sub, f"{path}.{name}")
    if "items" in schema:
        problems += _walk(schema["items"], f"{path}[]")
    return problems


@pytest.mark.parametrize("crd", crd_manifests(), ids=lambda c: c["metadata"]["name"])
def test_crd_schema_is_structural(crd: dict[str, Any]) -> None:
    version = crd["spec"]["versions"][0]
    schema = version["schema"]["openAPIV3Schema"]
    assert _walk(schema, "") == []
    assert version["subresources"] == {"status": {}}
    assert schema["properties"]["metadata"] == {"type": "object"}


def test_crds_have_the_documented_short_names_and_columns() -> None:
    by_name = {c["metadata"]["name"]: c for c in crd_manifests()}
    assert "shortNames" not in by_name["datasets.sedna.io"]["spec"]["names"]
    assert by_name["jointinferenceservices.sedna.io"]["spec"]["names"]["shortNames"] == [
        "ji",
        "jis",
    ]
    assert by_name["federatedlearningjobs.sedna.io"]["spec"]["names"]["shortNames"] == ["fl"]
    assert "shortNames" not in by_name["federatedlearningtasks.edgeai.io"]["spec"]["names"]
    assert by_name["incrementallearningjobs.sedna.io"]["spec"]["names"]["shortNames"] == ["il"]
    assert by_name["lifelonglearningjobs.sedna.io"]["spec"]["names"]["shortNames"] == ["ll"]
    legacy_ji = by_name["neptunejointinferenceservices.neptune.io"]["spec"]
    assert legacy_ji["names"]["kind"] == "JointInferenceService"
    assert "shortNames" not in legacy_ji["names"]
    columns = legacy_ji["versions"][0]["additionalPrinterColumns"]
    assert [(c["name"], c["jsonPath"]) for c in columns] == [
        ("status", ".status.conditions[-1].type"),
        ("active", ".status.active"),
        ("failed", ".status.failed"),
        ("Age", ".metadata.creationTimestamp"),
    ]
    fl_columns = by_name["federatedlearningjobs.sedna.io"]["spec"]["versions"][0][
        "additionalPrinterColumns"
    ]
    assert {c["jsonPath"] for c in fl_columns} >= {".status.phase", ".status.currentRound"}


def test_the_seed_crd_required_fields_are_kept_for_the_legacy_joint_inference() -> None:
    crd = next(c for c in crd_manifests() if c["spec"]["group"] == "neptune.io")
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert spec["required"] == ["cloudWorker", "edgeWorker"]
    edge = spec["properties"]["edgeWorker"]
    assert edge["required"] == sorted(
        ["name", "model", "nodeName", "hardExampleAlgorithm", "workerSpec"]
    )


def test_canonical_group_is_listed_before_legacy_groups() -> None:
    groups = [info.group for info in KINDS]
    assert groups.index("sedna.io") < groups.index("neptune.io")
    assert groups.index("sedna.io") < groups.index("edgeai.io")


# Resource names, singulars and short names of Kubernetes' built-in kinds (v1.28 to v1.34).
_BUILTIN_NAMES_TEXT = """
    bindings binding componentstatuses componentstatus cs configmaps configmap cm endpoints ep
    events event ev limitranges limitrange limits namespaces namespace ns nodes node no
    persistentvolumeclaims persistentvolumeclaim pvc persistentvolumes persistentvolume pv pods
    pod po podtemplates podtemplate replicationcontrollers replicationcontroller rc
    resourcequotas resourcequota quota secrets secret serviceaccounts serviceaccount sa services
    service svc controllerrevisions controllerrevision daemonsets daemonset ds deployments
    deployment deploy replicasets replicaset rs statefulsets statefulset sts
    horizontalpodautoscalers horizontalpodautoscaler hpa cronjobs cronjob cj jobs job
    certificatesigningrequests certificatesigningrequest csr leases lease endpointslices
    endpointslice ingressclasses ingressclass ingresses ingress ing networkpolicies
    networkpolicy netpol runtimeclasses runtimeclass poddisruptionbudgets poddisruptionbudget
    pdb clusterrolebindings clusterrolebinding clusterroles clusterrole rolebindings rolebinding
    roles role priorityclasses priorityclass pc csidrivers csidriver csinodes csinode
    storageclasses storageclass sc volumeattachments volumeattachment customresourcedefinitions
    crd crds apiservices apiservice flowschemas flowschema prioritylevelconfigurations
    mutatingwebhookconfigurations validatingwebhookconfigurations tokenreviews
    subjectaccessreviews selfsubjectaccessreviews ipaddresses servicecidrs
"""
BUILTIN_NAMES = frozenset(_BUILTIN_NAMES_TEXT.split())


def _names(info: Any) -> set[str]:
    return {info.plural, info.singular, *info.short_names}


def test_no_name_means_two_kinds_on_any_server() -> None:
    """kubectl maps a bare name to the first group in discovery order, which on a real server
    is not ours to choose: no two kinds, and no kind and a built-in one, share a name."""
    for index, info in enumerate(KINDS):
        assert not _names(info) & BUILTIN_NAMES, info.kind
        for other in KINDS[index + 1 :]:
            assert not _names(info) & _names(other), (info.api_version, other.api_version)
    legacy = [info for info in KINDS if info.legacy]
    assert legacy and all(info.short_names == () for info in legacy)


def test_committed_crd_files_are_fresh() -> None:
    assert stale_files(ROOT / "deploy" / "crds") == []
