"""Unit tests of the API server's pure parts: patches, selectors, JSONPath, schemas, store."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml

from apiserver import errors as err
from apiserver.audit import request_attributes
from apiserver.crds import resource_type_from_crd, validate_crd, version_priority
from apiserver.discovery import aggregated, aggregated_version, in_server_order
from apiserver.jsonpath import JsonPathError, first
from apiserver.patch import PatchError, json_patch, merge_patch, strategic_merge_patch
from apiserver.registry import GroupInfo, Registry
from apiserver.schema import apply_defaults, drop_nulls, prune, validate
from apiserver.selectors import FieldSelector, LabelSelector, SelectorError
from apiserver.store import Key, Store
from apiserver.table import human_duration
from tests.apiserver_fixtures import DATASET_CRD_YAML, crds_for_tests

# --- merge patch (RFC 7386) ------------------------------------------------------------------


def test_merge_patch_merges_objects_deletes_nulls_and_replaces_lists() -> None:
    target = {"a": {"b": 1, "c": 2}, "list": [1, 2], "keep": True}
    patched = merge_patch(target, {"a": {"b": None, "d": 4}, "list": [3]})
    assert patched == {"a": {"c": 2, "d": 4}, "list": [3], "keep": True}
    assert target == {"a": {"b": 1, "c": 2}, "list": [1, 2], "keep": True}


def test_merge_patch_with_a_non_object_replaces_the_document() -> None:
    assert merge_patch({"a": 1}, ["x"]) == ["x"]
    assert merge_patch("old", {"a": {"b": None}}) == {"a": {}}


# --- JSON patch (RFC 6902) -------------------------------------------------------------------


def test_json_patch_operations_and_pointer_escaping() -> None:
    doc = {"metadata": {"labels": {}}, "items": [1, 2, 3], "a": {"b": "c"}}
    patched = json_patch(
        doc,
        [
            {"op": "add", "path": "/metadata/labels/example.com~1tier", "value": "gold"},
            {"op": "add", "path": "/metadata/labels/til~0de", "value": "x"},
            {"op": "add", "path": "/items/-", "value": 4},
            {"op": "add", "path": "/items/0", "value": 0},
            {"op": "remove", "path": "/items/1"},
            {"op": "replace", "path": "/a/b", "value": "d"},
            {"op": "copy", "from": "/a", "path": "/copied"},
            {"op": "move", "from": "/copied/b", "path": "/moved"},
            {"op": "test", "path": "/moved", "value": "d"},
        ],
    )
    assert patched["metadata"]["labels"] == {"example.com/tier": "gold", "til~de": "x"}
    assert patched["items"] == [0, 2, 3, 4]
    assert patched["a"] == {"b": "d"}
    assert patched["copied"] == {}
    assert patched["moved"] == "d"
    assert doc["items"] == [1, 2, 3], "the input must not change"


def test_json_patch_failures_leave_the_document_unchanged() -> None:
    doc = {"spec": {"x": 1}}
    original = copy.deepcopy(doc)
    with pytest.raises(PatchError, match="testing value /spec/x failed"):
        json_patch(
            doc,
            [
                {"op": "replace", "path": "/spec/x", "value": 2},
                {"op": "test", "path": "/spec/x", "value": 1},
            ],
        )
    with pytest.raises(PatchError, match="missing"):
        json_patch(doc, [{"op": "remove", "path": "/spec/nope"}])
    with pytest.raises(PatchError, match="out of bounds"):
        json_patch({"l": [1]}, [{"op": "add", "path": "/l/5", "value": 1}])
    assert doc == original


def test_json_patch_rejects_malformed_patches() -> None:
    with pytest.raises(PatchError) as not_a_list:
        json_patch({}, {"op": "add"})
    assert not_a_list.value.malformed
    with pytest.raises(PatchError) as unknown_op:
        json_patch({}, [{"op": "frobnicate", "path": "/a"}])
    assert unknown_op.value.malformed
    with pytest.raises(PatchError) as no_value:
        json_patch({}, [{"op": "add", "path": "/a"}])
    assert 'missing the "value" member' in str(no_value.value)


def test_json_patch_test_distinguishes_booleans_from_numbers() -> None:
    assert json_patch({"a": 1}, [{"op": "test", "path": "/a", "value": 1.0}]) == {"a": 1}
    with pytest.raises(PatchError):
        json_patch({"a": 1}, [{"op": "test", "path": "/a", "value": True}])


# --- strategic merge patch --------------------------------------------------------------------


def test_strategic_merge_patch_merges_lists_by_key_and_honours_directives() -> None:
    pod = {
        "metadata": {"finalizers": ["a"]},
        "spec": {
            "containers": [
                {"name": "main", "image": "v1", "env": [{"name": "A", "value": "1"}]},
                {"name": "side", "image": "s1"},
            ],
            "tolerations": [{"key": "x"}],
        },
    }
    patch = {
        "metadata": {"finalizers": ["b"]},
        "spec": {
            "$setElementOrder/containers": [{"name": "main"}],
            "containers": [
                {"name": "main", "env": [{"name": "B", "value": "2"}]},
                {"name": "side", "$patch": "delete"},
            ],
            "tolerations": [{"key": "y"}],
        },
    }
    patched = strategic_merge_patch(pod, patch)
    assert patched["metadata"]["finalizers"] == ["a", "b"]
    assert patched["spec"]["containers"] == [
        {
            "name": "main",
            "image": "v1",
            "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
        }
    ]
    assert patched["spec"]["tolerations"] == [{"key": "y"}]
    assert "$setElementOrder/containers" not in patched["spec"]


def test_strategic_merge_patch_delete_from_primitive_list_and_replace() -> None:
    patched = strategic_merge_patch(
        {"metadata": {"finalizers": ["a", "b"]}, "spec": {"x": 1, "y": 2}},
        {
            "metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]},
            "spec": {"$patch": "replace", "z": 3},
        },
    )
    assert patched == {"metadata": {"finalizers": ["b"]}, "spec": {"z": 3}}


# --- selectors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        ("tier=gold", {"tier": "gold"}, True),
        ("tier==gold", {"tier": "silver"}, False),
        ("tier!=gold", {}, True),
        ("tier!=gold", {"tier": "gold"}, False),
        ("tier in (gold, silver)", {"tier": "silver"}, True),
        ("tier notin (gold,silver)", {"tier": "bronze"}, True),
        ("tier notin (gold)", {}, True),
        ("tier", {"tier": ""}, True),
        ("!tier", {"tier": "x"}, False),
        ("!tier", {"other": "x"}, True),
        ("tier=gold,env in (prod),!debug", {"tier": "gold", "env": "prod"}, True),
        ("tier=gold,env in (prod),!debug", {"tier": "gold", "env": "prod", "debug": "1"}, False),
        ("example.com/owner=me", {"example.com/owner": "me"}, True),
        ("replicas>2", {"replicas": "3"}, True),
        ("replicas<2", {"replicas": "3"}, False),
        ("", {"any": "thing"}, True),
    ],
)
def test_label_selector(selector: str, labels: dict[str, str], expected: bool) -> None:
    assert LabelSelector.parse(selector).matches(labels) is expected


@pytest.mark.parametrize("bad", ["tier=", "tier in gold", "a b", "tier=bad value!", "x>y", "=gold"])
def test_label_selector_errors(bad: str) -> None:
    if bad == "tier=":
        # An empty value is valid and matches an empty label.
        assert LabelSelector.parse(bad).matches({"tier": ""})
        return
    with pytest.raises(SelectorError):
        LabelSelector.parse(bad)


def test_field_selector_parsing_matching_and_support() -> None:
    selector = FieldSelector.parse("metadata.name=a,spec.nodeName!=edge1")
    values = {"metadata.name": "a", "spec.nodeName": "edge0"}
    assert selector.matches(values.__getitem__)
    assert not selector.matches({"metadata.name": "a", "spec.nodeName": "edge1"}.__getitem__)
    assert selector.exact_name() == "a"
    assert FieldSelector.parse(r"metadata.name=a\,b").requirements[0].value == "a,b"
    with pytest.raises(SelectorError, match=r"field label not supported: spec\.bogus"):
        FieldSelector.parse("spec.bogus=1").check_supported(lambda f: f.startswith("metadata."))
    with pytest.raises(SelectorError, match="can't understand"):
        FieldSelector.parse("justaname")


# --- JSONPath ---------------------------------------------------------------------------------


def test_jsonpath_subset_used_by_printer_columns() -> None:
    obj = {
        "metadata": {"labels": {"app.kubernetes.io/name": "demo"}},
        "status": {
            "conditions": [
                {"type": "Ready", "status": "False"},
                {"type": "Running", "status": "True"},
            ],
            "active": 2,
        },
    }
    assert first(".status.conditions[-1].type", obj) == "Running"
    assert first("{.status.conditions[0].type}", obj) == "Ready"
    assert first('.status.conditions[?(@.type=="Ready")].status', obj) == "False"
    assert first(".status.conditions[?(@.status!='False')].type", obj) == "Running"
    assert first(r".metadata.labels.app\.kubernetes\.io/name", obj) == "demo"
    assert first(".metadata.labels['app.kubernetes.io/name']", obj) == "demo"
    assert first(".status.active", obj) == 2
    assert first("..type", obj) == "Ready"
    assert first(".status.conditions[*].type", obj) == "Ready"
    assert first(".status.missing", obj) is None
    assert first(".status.conditions[5].type", obj) is None
    with pytest.raises(JsonPathError):
        first(".status.conditions[?(bogus)]", obj)


# --- structural schemas -----------------------------------------------------------------------


def _dataset_schema() -> dict:
    crd = yaml.safe_load(DATASET_CRD_YAML)
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def _messages(obj: dict) -> list[str]:
    return [str(e) for e in validate(obj, _dataset_schema())]


def test_schema_reports_errors_with_the_real_servers_wording() -> None:
    obj = {
        "spec": {
            "url": 5,
            "format": "xml",
            "nodeName": "Edge_0",
            "replicas": 0,
            "ratio": 1,
            "tags": ["a", "b", "c", "d"],
            "params": {"k": 1},
            "startTime": "yesterday",
            "port": True,
        },
        "status": {"numberOfSamples": -1},
    }
    assert _messages(obj) == [
        'spec.url: Invalid value: "integer": spec.url in body must be of type string: "integer"',
        'spec.format: Unsupported value: "xml": supported values: "txt", "csv"',
        'spec.nodeName: Invalid value: "Edge_0": spec.nodeName in body should match '
        "'^[a-z0-9-]+$'",
        "spec.replicas: Invalid value: 0: spec.replicas in body should be greater than or equal "
        "to 1",
        "spec.ratio: Invalid value: 1: spec.ratio in body should be less than 1",
        "spec.tags: Too many: 4: must have at most 3 items",
        'spec.params.k: Invalid value: "integer": spec.params.k in body must be of type string: '
        '"integer"',
        'spec.startTime: Invalid value: "yesterday": spec.startTime in body must be of type '
        'date-time: "yesterday"',
        'spec.port: Invalid value: "boolean": spec.port in body must be of type integer,string: '
        '"boolean"',
        "status.numberOfSamples: Invalid value: -1: status.numberOfSamples in body should be "
        "greater than or equal to 0",
    ]


def test_schema_required_nested_and_formats() -> None:
    assert _messages({"spec": {}}) == ["spec.url: Required value", "spec.format: Required value"]
    assert _messages({"spec": {"url": "", "format": "csv"}}) == [
        'spec.url: Invalid value: "": spec.url in body should be at least 1 chars long'
    ]
    assert _messages({"spec": {"url": "u", "format": "csv", "replicas": 2**40}})[0].endswith(
        'must be of type int32: "1099511627776"'
    )
    ok = {
        "spec": {
            "url": "u",
            "format": "txt",
            "port": "http",
            "startTime": "2026-01-02T03:04:05Z",
            "extra": {"any": {"thing": [1]}},
            "note": None,
        }
    }
    assert _messages(ok) == []


def test_schema_pruning_defaults_and_nulls() -> None:
    schema = _dataset_schema()
    obj = {
        "apiVersion": "sedna.io/v1alpha1",
        "kind": "Dataset",
        "metadata": {"name": "x"},
        "spec": {
            "url": "u",
            "format": "csv",
            "bogus": 1,
            "extra": {"kept": 1},
            "tags": ["a"],
            "nodeName": None,
            "note": None,
        },
        "unknownTop": {},
    }
    assert prune(obj, schema, remove=False) == ["spec.bogus", "unknownTop"]
    assert "bogus" in obj["spec"]
    prune(obj, schema)
    drop_nulls(obj, schema)
    apply_defaults(obj, schema)
    assert obj["spec"] == {
        "url": "u",
        "format": "csv",
        "extra": {"kept": 1},
        "tags": ["a"],
        "note": None,
        "replicas": 1,
        "retries": 3,
    }
    assert "unknownTop" not in obj and obj["metadata"] == {"name": "x"}


def test_invalid_status_message_lists_several_causes_in_brackets() -> None:
    errors = validate({"spec": {"format": "xml"}}, _dataset_schema())
    error = err.invalid_object("Dataset", "sedna.io", "bad-ds", errors)
    assert error.code == 422
    assert error.message == (
        'Dataset.sedna.io "bad-ds" is invalid: [spec.url: Required value, spec.format: '
        'Unsupported value: "xml": supported values: "txt", "csv"]'
    )
    body = error.status().to_dict()
    assert body["details"]["causes"][0] == {
        "reason": "FieldValueRequired",
        "message": "Required value",
        "field": "spec.url",
    }
    assert body["details"]["kind"] == "Dataset" and body["reason"] == "Invalid"


# --- CRDs, discovery --------------------------------------------------------------------------


def test_crd_checks_and_resource_type() -> None:
    crd = yaml.safe_load(DATASET_CRD_YAML)
    assert validate_crd(crd) == []
    rt = resource_type_from_crd(crd)
    assert (rt.group, rt.plural, rt.singular, rt.kind, rt.list_kind) == (
        "sedna.io",
        "datasets",
        "dataset",
        "Dataset",
        "DatasetList",
    )
    assert rt.status and rt.namespaced and rt.short_names == ("dset",)
    assert [c.name for c in rt.version_columns("v1alpha1")] == [
        "NodeName",
        "Format",
        "Samples",
        "Age",
    ]
    assert rt.supports_field("spec.nodeName") and not rt.supports_field("spec.url")

    broken = copy.deepcopy(crd)
    broken["metadata"]["name"] = "wrong.sedna.io"
    broken["spec"]["versions"].append(copy.deepcopy(broken["spec"]["versions"][0]))
    messages = [str(e) for e in validate_crd(broken)]
    assert (
        'metadata.name: Invalid value: "wrong.sedna.io": must be spec.names.plural+"."+spec.group'
        in messages
    )
    assert any("must have exactly one version marked as storage version" in m for m in messages)
    assert any(m.startswith("spec.versions[1].name: Duplicate value") for m in messages)


@pytest.mark.parametrize(
    ("method", "path", "query", "expected"),
    [
        ("GET", "/api/v1/namespaces/d/pods", {}, ("list", "", "pods", "", "d", "")),
        ("GET", "/api/v1/pods", {"watch": "true"}, ("watch", "", "pods", "", "", "")),
        ("PATCH", "/apis/sedna.io/v1alpha1/namespaces/d/datasets/x/status", {},
         ("patch", "sedna.io", "datasets", "status", "d", "x")),
        ("DELETE", "/api/v1/namespaces/gone", {}, ("delete", "", "namespaces", "", "", "gone")),
        ("GET", "/api/v1/namespaces/n/status", {},
         ("get", "", "namespaces", "status", "", "n")),
        ("POST", "/apis/coordination.k8s.io/v1/namespaces/s/leases", {},
         ("create", "coordination.k8s.io", "leases", "", "s", "")),
        ("DELETE", "/api/v1/namespaces/d/pods", {},
         ("deletecollection", "", "pods", "", "d", "")),
    ],
)  # fmt: skip
def test_request_attributes_are_what_rbac_sees(
    method: str, path: str, query: dict[str, str], expected: tuple[str, ...]
) -> None:
    got = request_attributes(method, path, query)
    assert got is not None
    assert (got.verb, got.api_group, got.resource, got.subresource, got.namespace, got.name) == (
        expected
    )


@pytest.mark.parametrize("path", ["/apis", "/api/v1", "/apis/sedna.io/v1alpha1", "/openapi/v3"])
def test_discovery_and_openapi_are_not_resource_requests(path: str) -> None:
    assert request_attributes("GET", path, {}) is None


def test_groups_are_listed_in_kube_apiserver_order() -> None:
    groups = [
        GroupInfo("sedna.io", ("v1alpha1",)),
        GroupInfo("coordination.k8s.io", ("v1",)),
        GroupInfo("neptune.io", ("v1alpha1",)),
        GroupInfo("b.io", ("v1",)),
        GroupInfo("a.io", ("v2",)),
        GroupInfo("apps", ("v1",)),
    ]
    aggregated = [g.name for g in in_server_order(groups, aggregated=True)]
    assert aggregated == ["apps", "coordination.k8s.io", "a.io", "b.io", "neptune.io", "sedna.io"]
    # The legacy APIGroupList breaks ties by APIService name, `<version>.<group>`.
    legacy = [g.name for g in in_server_order(groups, aggregated=False)]
    assert legacy == ["apps", "coordination.k8s.io", "b.io", "neptune.io", "sedna.io", "a.io"]


def test_version_priority_orders_like_kubernetes() -> None:
    versions = ["v1alpha1", "v2", "foo", "v1beta1", "v1", "v1beta2"]
    assert sorted(versions, key=version_priority) == [
        "v2",
        "v1",
        "v1beta2",
        "v1beta1",
        "v1alpha1",
        "foo",
    ]


def test_discovery_lists_crd_groups_by_name() -> None:
    registry = Registry([])
    for crd in crds_for_tests():
        registry.put(resource_type_from_crd(crd))
    doc = aggregated(registry, core=False)
    assert [item["metadata"]["name"] for item in doc["items"]] == ["neptune.io", "sedna.io"]
    sedna = doc["items"][1]["versions"][0]["resources"]
    datasets = next(r for r in sedna if r["resource"] == "datasets")
    assert datasets["shortNames"] == ["dset"] and datasets["singularResource"] == "dataset"
    assert datasets["subresources"][0]["subresource"] == "status"
    accept = (
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
        "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json"
    )
    assert aggregated_version(accept) == "apidiscovery.k8s.io/v2"
    assert aggregated_version("application/json, */*") is None


# --- tables -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (-5, "<invalid>"),
        (-1, "0s"),
        (0, "0s"),
        (59, "59s"),
        (119, "119s"),
        (120, "2m"),
        (125, "2m5s"),
        (600, "10m"),
        (3 * 3600, "3h"),
        (3 * 3600 + 60, "3h1m"),
        (9 * 3600, "9h"),
        (50 * 3600, "2d2h"),
        (9 * 86400, "9d"),
        (800 * 86400, "2y70d"),
        (9 * 365 * 86400, "9y"),
    ],
)
def test_human_duration_matches_kubectl(seconds: int, text: str) -> None:
    assert human_duration(seconds) == text


# --- store ------------------------------------------------------------------------------------


def test_store_is_atomic_and_versions_only_increase(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.sqlite3", history_size=100)
    key = Key("g", "things", "ns", "a")
    with store.transaction() as txn:
        txn.put(key, {"metadata": {"name": "a"}}, None)
    assert store.resource_version == 1
    with pytest.raises(RuntimeError, match="boom"), store.transaction() as txn:
        txn.put(Key("g", "things", "ns", "b"), {"metadata": {"name": "b"}}, None)
        raise RuntimeError("boom")
    assert store.resource_version == 1
    assert store.get(Key("g", "things", "ns", "b")) is None
    assert store.events_after(0, "g", "things")[0][-1].name == "a"
    store.close()

    reopened = Store(tmp_path / "db.sqlite3", history_size=100)
    assert reopened.get(key) == {"metadata": {"name": "a", "resourceVersion": "1"}}
    with reopened.transaction() as txn:
        txn.delete(key, reopened.get(key) or {})
    assert reopened.resource_version == 2
    events, latest = reopened.events_after(0, "g", "things")
    assert [(e.type, e.rv) for e in events] == [("ADDED", 1), ("DELETED", 2)]
    assert latest == 2
    reopened.close()


def test_store_serves_recent_events_from_memory_as_from_disk(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.sqlite3", history_size=40)
    for index in range(60):
        with store.transaction() as txn:
            resource = "things" if index % 3 else "others"
            key = Key("g", resource, f"ns{index % 2}", f"o{index}")
            txn.put(key, {"metadata": {"name": f"o{index}"}}, None)
        if index % 7 == 0:
            with store.transaction() as txn:
                txn.put(key, {"metadata": {"name": f"o{index}"}, "spec": 1}, txn.get(key))
    memory = {
        (rv, resource, namespace, limit): store.events_after(rv, "g", resource, namespace, limit)
        for rv in range(store.compacted, store.resource_version + 1, 5)
        for resource in ("things", "others")
        for namespace in (None, "ns1")
        for limit in (3, 500)
    }
    store.close()
    reopened = Store(tmp_path / "db.sqlite3", history_size=40)  # nothing in memory: from disk
    for (rv, resource, namespace, limit), found in memory.items():
        assert found == reopened.events_after(rv, "g", resource, namespace, limit)
    reopened.close()


def test_store_compacts_history_beyond_its_window(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.sqlite3", history_size=10)
    for index in range(30):
        with store.transaction() as txn:
            txn.put(Key("g", "things", "", f"o{index}"), {"metadata": {"name": f"o{index}"}}, None)
    assert store.resource_version == 30
    assert 10 <= store.compacted <= 20
    events, _ = store.events_after(store.compacted, "g", "things", limit=100)
    assert events[0].rv == store.compacted + 1
    assert json.loads(json.dumps(events[-1].object))["metadata"]["resourceVersion"] == "30"
    store.close()
