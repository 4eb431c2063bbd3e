"""The embedded API server driven by the real kubectl (the installed dispatcher runs 1.32)."""

from __future__ import annotations

import json
import queue
import subprocess
import threading
from collections.abc import Callable, Iterator

import pytest
import yaml

from apiserver import ApiServer
from tests.apiserver_fixtures import NEPTUNE_JIS_SAMPLE_YAML, Kubectl, dataset


def _manifest(*objects: dict) -> str:
    return "\n---\n".join(yaml.safe_dump(o) for o in objects)


def _jis_sample(name: str = "helmet-detection-demo") -> dict:
    sample = yaml.safe_load(NEPTUNE_JIS_SAMPLE_YAML)
    sample["metadata"]["name"] = name
    return sample


class _Lines:
    """Lines of a background kubectl's stdout, read by a thread so waits can time out."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.seen: list[str] = []
        self._queue: queue.Queue[str] = queue.Queue()
        assert process.stdout is not None
        stdout = process.stdout
        threading.Thread(
            target=lambda: [self._queue.put(line) for line in stdout], daemon=True
        ).start()

    def wait_for(self, predicate: Callable[[str], bool], timeout: float = 20) -> str:
        """The next line satisfying `predicate`; fails with everything seen on timeout."""
        while True:
            try:
                line = self._queue.get(timeout=timeout)
            except queue.Empty:
                pytest.fail(f"no matching line within {timeout}s; saw {self.seen}")
            self.seen.append(line)
            if predicate(line):
                return line


@pytest.fixture
def watch_process(api_kubectl: Kubectl) -> Iterator[Callable[..., _Lines]]:
    """Start `kubectl ... -w` processes; they are stopped after the test."""
    started: list[subprocess.Popen[str]] = []

    def start(*args: str) -> _Lines:
        process = api_kubectl.popen(*args)
        started.append(process)
        return _Lines(process)

    yield start
    for process in started:
        process.terminate()
        process.wait(timeout=10)


def test_version_discovery_and_namespaces(api_kubectl: Kubectl) -> None:
    version = json.loads(api_kubectl.ok("version", "-o", "json"))
    assert version["serverVersion"]["minor"] == "32"
    assert version["serverVersion"]["gitVersion"] == "v1.32.5"

    resources = api_kubectl.ok("api-resources", "--no-headers")
    rows = [line.split() for line in resources.splitlines()]
    assert ["datasets", "dset", "sedna.io/v1alpha1", "true", "Dataset"] in rows
    assert [
        "jointinferenceservices",
        "jointinferenceservice,jis",
        "neptune.io/v1alpha1",
        "true",
        "JointInferenceService",
    ] in rows
    assert ["namespaces", "ns", "v1", "false", "Namespace"] in rows
    assert ["leases", "coordination.k8s.io/v1", "true", "Lease"] in rows

    namespaces = api_kubectl.ok("get", "ns")
    assert namespaces.splitlines()[0].split() == ["NAME", "STATUS", "AGE"]
    assert any(line.split()[:2] == ["default", "Active"] for line in namespaces.splitlines())


def test_apply_the_design_document_sample_twice_then_change_it(api_kubectl: Kubectl) -> None:
    sample = _jis_sample()
    assert api_kubectl.ok("apply", "-f", "-", stdin=_manifest(sample)).strip() == (
        "jointinferenceservice.neptune.io/helmet-detection-demo created"
    )
    assert api_kubectl.ok("apply", "-f", "-", stdin=_manifest(sample)).strip() == (
        "jointinferenceservice.neptune.io/helmet-detection-demo unchanged"
    )
    sample["spec"]["edgeWorker"]["nodeName"] = "edge1"
    assert api_kubectl.ok("apply", "-f", "-", stdin=_manifest(sample)).strip() == (
        "jointinferenceservice.neptune.io/helmet-detection-demo configured"
    )
    stored = json.loads(
        api_kubectl.ok(
            "get", "jointinferenceservices.neptune.io", "helmet-detection-demo", "-o", "json"
        )
    )
    assert stored["spec"]["edgeWorker"]["nodeName"] == "edge1"
    assert stored["metadata"]["generation"] == 2
    assert "kubectl.kubernetes.io/last-applied-configuration" in stored["metadata"]["annotations"]


def test_get_by_every_name_with_printer_columns(api_kubectl: Kubectl) -> None:
    api_kubectl.ok("create", "namespace", "team-a")
    api_kubectl.ok(
        "apply",
        "-f",
        "-",
        stdin=_manifest(
            dataset("cols-a"),
            dataset("cols-b", "team-a", format="txt", nodeName="edge1"),
        ),
    )
    table = api_kubectl.ok("get", "datasets")
    assert table.splitlines()[0].split() == ["NAME", "NODENAME", "FORMAT", "AGE"]
    assert any(line.split()[:3] == ["cols-a", "edge0", "csv"] for line in table.splitlines())
    for name in ("dataset", "Dataset", "dset", "datasets.sedna.io", "dset.sedna.io"):
        assert "cols-a" in api_kubectl.ok("get", name, "cols-a"), name

    wide = api_kubectl.ok("get", "dset", "-o", "wide")
    assert wide.splitlines()[0].split() == ["NAME", "NODENAME", "FORMAT", "SAMPLES", "AGE"]

    everywhere = api_kubectl.ok("get", "datasets", "-A")
    assert everywhere.splitlines()[0].split()[:2] == ["NAMESPACE", "NAME"]
    assert any(
        line.split()[:4] == ["team-a", "cols-b", "edge1", "txt"] for line in everywhere.splitlines()
    )

    names = api_kubectl.ok("get", "dset", "-o", "name", "-A").split()
    assert {"dataset.sedna.io/cols-a", "dataset.sedna.io/cols-b"} <= set(names)
    chunked = api_kubectl.ok("get", "datasets", "-A", "--chunk-size=1", "-o", "name").split()
    assert sorted(chunked) == sorted(names)
    by_field = api_kubectl.ok(
        "get", "dset", "-A", "--field-selector", "spec.nodeName=edge1", "-o", "name"
    )
    assert by_field.split() == ["dataset.sedna.io/cols-b"]


def test_a_name_shared_by_two_groups_resolves_as_on_a_real_server(api_kubectl: Kubectl) -> None:
    """CRD groups are listed alphabetically after the built-in ones, as kube-apiserver does, so
    kubectl maps a plural or short name served by sedna.io and neptune.io to neptune.io."""
    canonical = {
        "apiVersion": "sedna.io/v1alpha1",
        "kind": "JointInferenceService",
        "metadata": {"name": "canonical-jis"},
        "spec": {"any": "thing"},
    }
    api_kubectl.ok("apply", "-f", "-", stdin=_manifest(canonical, _jis_sample("legacy-jis")))
    for name in ("jis", "jointinferenceservices"):
        listed = api_kubectl.ok("get", name, "-o", "name").split()
        assert "jointinferenceservice.neptune.io/legacy-jis" in listed, name
        assert "jointinferenceservice.sedna.io/canonical-jis" not in listed, name
    qualified = api_kubectl.ok("get", "jointinferenceservices.sedna.io", "-o", "name").split()
    assert qualified == ["jointinferenceservice.sedna.io/canonical-jis"]


def test_yaml_round_trip_replace_and_stale_conflict(api_kubectl: Kubectl) -> None:
    api_kubectl.ok("create", "-f", "-", stdin=_manifest(dataset("round-trip")))
    exported = api_kubectl.ok("get", "dataset", "round-trip", "-o", "yaml")
    obj = yaml.safe_load(exported)
    assert obj["spec"]["replicas"] == 1, "defaults from the schema are applied"
    obj["spec"]["url"] = "/data/changed.csv"
    assert "replaced" in api_kubectl.ok("replace", "-f", "-", stdin=yaml.safe_dump(obj))
    again = yaml.safe_load(api_kubectl.ok("get", "dataset", "round-trip", "-o", "yaml"))
    assert again["spec"]["url"] == "/data/changed.csv"
    assert int(again["metadata"]["resourceVersion"]) > int(obj["metadata"]["resourceVersion"])
    assert again["metadata"]["uid"] == obj["metadata"]["uid"]
    stale = api_kubectl.fails("replace", "-f", "-", stdin=yaml.safe_dump(obj))
    assert "Error from server (Conflict)" in stale
    assert (
        'Operation cannot be fulfilled on datasets.sedna.io "round-trip": the object has been '
        "modified" in stale
    )


def test_get_watch_streams_table_rows_and_names(
    api_kubectl: Kubectl, watch_process: Callable[..., _Lines]
) -> None:
    api_kubectl.ok("create", "-f", "-", stdin=_manifest(dataset("watched")))
    table = watch_process("get", "datasets", "-w")
    names = watch_process("get", "datasets", "-w", "-o", "name")
    table.wait_for(lambda line: line.split()[:1] == ["NAME"])
    table.wait_for(lambda line: line.startswith("watched "))
    names.wait_for(lambda line: line.split() == ["dataset.sedna.io/watched"])

    api_kubectl.ok(
        "patch", "dataset", "watched", "--type", "merge", "-p", '{"spec":{"nodeName":"edge7"}}'
    )
    api_kubectl.ok("create", "-f", "-", stdin=_manifest(dataset("watched-later")))
    api_kubectl.ok("delete", "dataset", "watched")

    assert table.wait_for(lambda line: "edge7" in line).split()[:2] == ["watched", "edge7"]
    table.wait_for(lambda line: line.startswith("watched-later "))
    # The modification, the new object, then the deletion, in order.
    names.wait_for(lambda line: line.split() == ["dataset.sedna.io/watched"])
    names.wait_for(lambda line: line.split() == ["dataset.sedna.io/watched-later"])
    names.wait_for(lambda line: line.split() == ["dataset.sedna.io/watched"])


def test_label_annotate_and_patch_types(api_kubectl: Kubectl) -> None:
    api_kubectl.ok("create", "-f", "-", stdin=_manifest(dataset("patched")))
    api_kubectl.ok("label", "dataset", "patched", "tier=gold")
    api_kubectl.ok("annotate", "dataset", "patched", "example.com/note=hello")
    assert api_kubectl.ok("get", "dset", "-l", "tier=gold", "-o", "name").split() == [
        "dataset.sedna.io/patched"
    ]
    assert (
        api_kubectl.ok("get", "dset", "-l", "tier notin (gold)", "-o", "name")
        .split()
        .count("dataset.sedna.io/patched")
        == 0
    )

    api_kubectl.ok(
        "patch", "dataset", "patched", "--type", "merge", "-p", '{"spec":{"format":"txt"}}'
    )
    api_kubectl.ok(
        "patch",
        "dataset",
        "patched",
        "--type",
        "json",
        "-p",
        '[{"op":"add","path":"/metadata/labels/example.com~1team","value":"edge"},'
        '{"op":"replace","path":"/spec/url","value":"/data/p.txt"}]',
    )
    refused = api_kubectl.fails("patch", "dataset", "patched", "-p", '{"spec":{"format":"csv"}}')
    assert (
        "application/strategic-merge-patch+json is not supported by sedna.io/v1alpha1, Kind=Dataset"
        in refused
    )
    assert (
        "the body of the request was in an unknown format - accepted media types include: "
        "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
    ) in refused

    api_kubectl.ok(
        "patch",
        "dataset",
        "patched",
        "--subresource=status",
        "--type=merge",
        "-p",
        '{"status":{"numberOfSamples":42},"spec":{"format":"csv"}}',
    )
    obj = json.loads(api_kubectl.ok("get", "dataset", "patched", "-o", "json"))
    assert obj["metadata"]["labels"] == {"tier": "gold", "example.com/team": "edge"}
    assert obj["metadata"]["annotations"] == {"example.com/note": "hello"}
    assert obj["spec"]["format"] == "txt", "spec is ignored on /status writes"
    assert obj["spec"]["url"] == "/data/p.txt"
    assert obj["status"] == {"numberOfSamples": 42}
    assert obj["metadata"]["generation"] == 3, "label/annotate/status do not bump generation"
    wide = api_kubectl.ok("get", "dataset", "patched", "-o", "wide", "--no-headers").split()
    assert wide[0] == "patched" and wide[3] == "42"


def test_describe_lists_the_objects_events(api_kubectl: Kubectl) -> None:
    api_kubectl.ok("create", "-f", "-", stdin=_manifest(dataset("described")))
    uid = api_kubectl.ok("get", "dataset", "described", "-o", "jsonpath={.metadata.uid}")
    event = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": "described.1"},
        "involvedObject": {
            "apiVersion": "sedna.io/v1alpha1",
            "kind": "Dataset",
            "name": "described",
            "namespace": "default",
            "uid": uid,
        },
        "reason": "IndexRead",
        "message": "read 42 samples",
        "type": "Normal",
        "source": {"component": "lc"},
        "count": 1,
        "firstTimestamp": "2026-01-01T00:00:00Z",
        "lastTimestamp": "2026-01-01T00:00:00Z",
    }
    api_kubectl.ok("create", "-f", "-", stdin=_manifest(event))
    described = api_kubectl.ok("describe", "dataset", "described")
    assert "Name:         described" in described
    assert "IndexRead" in described and "read 42 samples" in described
    events = api_kubectl.ok("get", "events", "--field-selector", "involvedObject.name=described")
    assert "dataset/described" in events and "IndexRead" in events


def test_delete_and_not_found(api_kubectl: Kubectl) -> None:
    api_kubectl.ok("create", "-f", "-", stdin=_manifest(dataset("doomed")))
    assert (
        api_kubectl.ok("delete", "dataset", "doomed").strip() == 'dataset.sedna.io "doomed" deleted'
    )
    missing = api_kubectl.fails("get", "dataset", "doomed")
    assert 'Error from server (NotFound): datasets.sedna.io "doomed" not found' in missing
    unknown = api_kubectl.fails("get", "nosuchthings")
    assert 'the server doesn\'t have a resource type "nosuchthings"' in unknown


def test_invalid_resources_are_refused_naming_the_field(api_kubectl: Kubectl) -> None:
    no_cloud_worker = _jis_sample("bad-jis")
    del no_cloud_worker["spec"]["cloudWorker"]
    error = api_kubectl.fails("apply", "-f", "-", stdin=_manifest(no_cloud_worker))
    assert (
        'The JointInferenceService "bad-jis" is invalid: spec.cloudWorker: Required value' in error
    )

    wrong_type = dataset("bad-type", url=5)
    error = api_kubectl.fails("create", "-f", "-", stdin=_manifest(wrong_type))
    assert (
        'spec.url: Invalid value: "integer": spec.url in body must be of type string: "integer"'
        in error
    )

    several = dataset("bad-several", format="xml", replicas=20)
    error = api_kubectl.fails("apply", "-f", "-", stdin=_manifest(several))
    assert '* spec.format: Unsupported value: "xml": supported values: "txt", "csv"' in error
    assert (
        "* spec.replicas: Invalid value: 20: spec.replicas in body should be less than or "
        "equal to 10" in error
    )

    unknown_field = dataset("bad-field", bogus=True)
    error = api_kubectl.fails("apply", "-f", "-", stdin=_manifest(unknown_field))
    assert (
        'Dataset in version "v1alpha1" cannot be handled as a Dataset: strict decoding error: '
        'unknown field "spec.bogus"'
    ) in error

    bad_name = dataset("Bad_Name")
    error = api_kubectl.fails("create", "-f", "-", stdin=_manifest(bad_name))
    assert 'metadata.name: Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain' in error

    unknown_kind = {**dataset("bad-kind"), "kind": "NoSuchKind"}
    error = api_kubectl.fails("apply", "-f", "-", stdin=_manifest(unknown_kind))
    assert 'no matches for kind "NoSuchKind" in version "sedna.io/v1alpha1"' in error

    stored = api_kubectl.ok("get", "datasets,jointinferenceservices.neptune.io", "-o", "name")
    assert "bad-" not in stored


def test_server_side_apply_and_dry_run(api_kubectl: Kubectl) -> None:
    manifest = dataset("ssa")
    out = api_kubectl.ok("apply", "--server-side", "-f", "-", stdin=_manifest(manifest))
    assert out.strip() == "dataset.sedna.io/ssa serverside-applied"
    manifest["spec"]["format"] = "txt"
    api_kubectl.ok("apply", "--server-side", "-f", "-", stdin=_manifest(manifest))
    assert api_kubectl.ok("get", "dset", "ssa", "-o", "jsonpath={.spec.format}") == "txt"

    dry = api_kubectl.ok("create", "--dry-run=server", "-f", "-", stdin=_manifest(dataset("dry")))
    assert "dataset.sedna.io/dry created (server dry run)" in dry
    assert "NotFound" in api_kubectl.fails("get", "dset", "dry")


def test_explain_uses_the_crd_schema(api_kubectl: Kubectl) -> None:
    explained = api_kubectl.ok("explain", "datasets.spec")
    assert "KIND:       Dataset" in explained
    assert "format" in explained and "<string>" in explained and "-required-" in explained
    assert "replicas" in explained


def test_applying_a_crd_serves_a_new_kind_and_deleting_it_removes_the_kind(
    api_kubectl: Kubectl,
) -> None:
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "gadgets.example.com"},
        "spec": {
            "group": "example.com",
            "names": {"kind": "Gadget", "plural": "gadgets", "shortNames": ["gd"]},
            "scope": "Cluster",
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {
                                    "type": "object",
                                    "required": ["size"],
                                    "properties": {"size": {"type": "integer"}},
                                }
                            },
                        }
                    },
                    "additionalPrinterColumns": [
                        {"name": "Size", "type": "integer", "jsonPath": ".spec.size"}
                    ],
                }
            ],
        },
    }
    assert "created" in api_kubectl.ok("apply", "-f", "-", stdin=_manifest(crd))
    api_kubectl.ok(
        "wait", "--for=condition=Established", "crd/gadgets.example.com", "--timeout=20s"
    )
    assert "gadgets.example.com" in api_kubectl.ok("get", "crd")
    gadget = {
        "apiVersion": "example.com/v1",
        "kind": "Gadget",
        "metadata": {"name": "g1"},
        "spec": {"size": 3},
    }
    api_kubectl.ok("apply", "-f", "-", stdin=_manifest(gadget))
    listed = api_kubectl.ok("get", "gd")
    assert listed.splitlines()[0].split() == ["NAME", "SIZE"]
    assert listed.splitlines()[1].split() == ["g1", "3"]
    invalid = api_kubectl.fails("apply", "-f", "-", stdin=_manifest({**gadget, "spec": {}}))
    assert "spec.size: Required value" in invalid

    api_kubectl.ok("delete", "crd", "gadgets.example.com")
    # With its discovery cache still listing gadgets, kubectl gets the server's 404 ...
    stale = api_kubectl.fails("get", "gadgets")
    assert "the server could not find the requested resource" in stale
    # ... and with a fresh cache it no longer knows the kind.
    fresh = Kubectl(api_kubectl.kubeconfig, api_kubectl.cache_dir.with_name("fresh-cache"))
    assert 'the server doesn\'t have a resource type "gadgets"' in fresh.fails("get", "gadgets")


def test_namespace_deletion_removes_its_objects(
    api_kubectl: Kubectl, api_server: ApiServer
) -> None:
    api_kubectl.ok("create", "namespace", "short-lived")
    api_kubectl.ok("apply", "-f", "-", stdin=_manifest(dataset("inside", "short-lived")))
    assert (
        api_kubectl.ok("delete", "namespace", "short-lived").strip()
        == 'namespace "short-lived" deleted'
    )
    assert "NotFound" in api_kubectl.fails("get", "ns", "short-lived")
    assert (
        api_kubectl.ok("get", "dset", "-A", "--field-selector", "metadata.namespace=short-lived")
        == ""
    )
    refused = api_kubectl.fails("delete", "namespace", "default")
    assert 'namespaces "default" is forbidden: this namespace may not be deleted' in refused
    missing_ns = api_kubectl.fails("create", "-f", "-", stdin=_manifest(dataset("x", "nowhere")))
    assert 'namespaces "nowhere" not found' in missing_ns
