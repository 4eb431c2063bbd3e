"""The embedded API server driven by the official `kubernetes` Python client."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes import client, watch
from kubernetes.client import ApiException

from tests.apiserver_fixtures import dataset

GROUP, VERSION, PLURAL = "sedna.io", "v1alpha1", "datasets"


@pytest.fixture
def custom(api_client: client.ApiClient) -> client.CustomObjectsApi:
    """CustomObjectsApi on the module's server."""
    return client.CustomObjectsApi(api_client)


def _create(
    custom: client.CustomObjectsApi, body: dict[str, Any], namespace: str = "default"
) -> dict:
    return custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)


def _get(custom: client.CustomObjectsApi, name: str, namespace: str = "default") -> dict:
    return custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)


def _error(exc: pytest.ExceptionInfo[ApiException]) -> dict:
    return json.loads(exc.value.body)


def test_create_get_list_replace_delete(custom: client.CustomObjectsApi) -> None:
    created = _create(custom, dataset("crud"))
    meta = created["metadata"]
    assert meta["uid"] and meta["generation"] == 1 and meta["creationTimestamp"].endswith("Z")
    assert created["spec"]["replicas"] == 1 and created["spec"]["retries"] == 3

    with pytest.raises(ApiException) as exists:
        _create(custom, dataset("crud"))
    assert exists.value.status == 409
    assert _error(exists)["reason"] == "AlreadyExists"
    assert _error(exists)["message"] == 'datasets.sedna.io "crud" already exists'

    listed = custom.list_namespaced_custom_object(GROUP, VERSION, "default", PLURAL)
    assert listed["kind"] == "DatasetList" and listed["apiVersion"] == "sedna.io/v1alpha1"
    assert int(listed["metadata"]["resourceVersion"]) >= int(meta["resourceVersion"])
    assert "crud" in [item["metadata"]["name"] for item in listed["items"]]
    assert all(item["kind"] == "Dataset" for item in listed["items"])
    everywhere = custom.list_cluster_custom_object(GROUP, VERSION, PLURAL)
    assert "crud" in [item["metadata"]["name"] for item in everywhere["items"]]

    replacement = _get(custom, "crud")
    replacement["spec"]["url"] = "/data/replaced.csv"
    replaced = custom.replace_namespaced_custom_object(
        GROUP, VERSION, "default", PLURAL, "crud", replacement
    )
    assert replaced["spec"]["url"] == "/data/replaced.csv"
    assert replaced["metadata"]["generation"] == 2
    assert int(replaced["metadata"]["resourceVersion"]) > int(meta["resourceVersion"])

    with pytest.raises(ApiException) as stale:
        custom.replace_namespaced_custom_object(
            GROUP, VERSION, "default", PLURAL, "crud", replacement
        )
    assert stale.value.status == 409 and _error(stale)["reason"] == "Conflict"

    del replacement["metadata"]["resourceVersion"]
    with pytest.raises(ApiException) as unconditional:
        custom.replace_namespaced_custom_object(
            GROUP, VERSION, "default", PLURAL, "crud", replacement
        )
    assert unconditional.value.status == 422
    assert (
        "metadata.resourceVersion: Invalid value: 0x0: must be specified for an update"
        in (_error(unconditional)["message"])
    )

    status = custom.delete_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "crud")
    assert status["kind"] == "Status" and status["status"] == "Success"
    assert status["details"] == {
        "name": "crud",
        "group": "sedna.io",
        "kind": "datasets",
        "uid": meta["uid"],
    }
    with pytest.raises(ApiException) as missing:
        _get(custom, "crud")
    assert missing.value.status == 404
    assert _error(missing)["details"] == {"name": "crud", "group": "sedna.io", "kind": "datasets"}


def test_selectors_and_pagination(
    custom: client.CustomObjectsApi, api_client: client.ApiClient
) -> None:
    client.CoreV1Api(api_client).create_namespace({"metadata": {"name": "paging"}})
    for index in range(5):
        body = dataset(f"page-{index}", "paging", nodeName=f"edge{index % 2}")
        body["metadata"]["labels"] = {
            "parity": "even" if index % 2 == 0 else "odd",
            "index": str(index),
        }
        _create(custom, body, "paging")

    def names(**kwargs: Any) -> list[str]:
        found = custom.list_namespaced_custom_object(GROUP, VERSION, "paging", PLURAL, **kwargs)
        return [item["metadata"]["name"] for item in found["items"]]

    assert names(label_selector="parity=even") == ["page-0", "page-2", "page-4"]
    assert names(label_selector="parity!=even,index notin (1)") == ["page-3"]
    assert names(field_selector="spec.nodeName=edge1") == ["page-1", "page-3"]
    assert names(field_selector="metadata.name=page-2") == ["page-2"]
    with pytest.raises(ApiException) as unsupported:
        names(field_selector="spec.url=x")
    assert unsupported.value.status == 400
    assert _error(unsupported)["message"] == "field label not supported: spec.url"

    pages, token, versions = [], None, set()
    while True:
        page = custom.list_namespaced_custom_object(
            GROUP, VERSION, "paging", PLURAL, limit=2, _continue=token
        )
        pages.append([item["metadata"]["name"] for item in page["items"]])
        versions.add(page["metadata"]["resourceVersion"])
        token = page["metadata"].get("continue")
        if not token:
            break
    assert pages == [["page-0", "page-1"], ["page-2", "page-3"], ["page-4"]]
    assert len(versions) == 1, "every page reports the first page's resourceVersion"


def test_status_subresource_splits_spec_and_status(custom: client.CustomObjectsApi) -> None:
    body = dataset("split")
    body["status"] = {"numberOfSamples": 99}
    created = _create(custom, body)
    assert "status" not in created, "status is dropped on create"

    patched = custom.patch_namespaced_custom_object_status(
        GROUP,
        VERSION,
        "default",
        PLURAL,
        "split",
        {"status": {"numberOfSamples": 7, "phase": "Ready"}, "spec": {"format": "txt"}},
    )
    assert patched["status"] == {"numberOfSamples": 7, "phase": "Ready"}
    assert patched["spec"]["format"] == "csv" and patched["metadata"]["generation"] == 1

    main = custom.patch_namespaced_custom_object(
        GROUP,
        VERSION,
        "default",
        PLURAL,
        "split",
        {"status": {"numberOfSamples": 1}, "spec": {"format": "txt"}},
    )
    assert main["status"]["numberOfSamples"] == 7, "status is ignored on main-resource writes"
    assert main["spec"]["format"] == "txt" and main["metadata"]["generation"] == 2

    current = custom.get_namespaced_custom_object_status(GROUP, VERSION, "default", PLURAL, "split")
    current["status"]["numberOfSamples"] = 8
    replaced = custom.replace_namespaced_custom_object_status(
        GROUP, VERSION, "default", PLURAL, "split", current
    )
    assert replaced["status"]["numberOfSamples"] == 8

    with pytest.raises(ApiException) as invalid:
        custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, "default", PLURAL, "split", {"status": {"numberOfSamples": -3}}
        )
    assert invalid.value.status == 422
    assert _error(invalid)["details"]["causes"][0]["field"] == "status.numberOfSamples"
    assert _get(custom, "split")["status"]["numberOfSamples"] == 8, "nothing stored on error"


def test_patch_content_types(custom: client.CustomObjectsApi) -> None:
    _create(custom, dataset("patchy"))
    json_patched = custom.patch_namespaced_custom_object(
        GROUP,
        VERSION,
        "default",
        PLURAL,
        "patchy",
        [
            {"op": "add", "path": "/metadata/labels", "value": {"a/b": "c"}},
            {"op": "replace", "path": "/spec/nodeName", "value": "edge9"},
        ],
        _content_type="application/json-patch+json",
    )
    assert json_patched["metadata"]["labels"] == {"a/b": "c"}
    assert json_patched["spec"]["nodeName"] == "edge9"

    with pytest.raises(ApiException) as as_merge:
        custom.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            "default",
            PLURAL,
            "patchy",
            [{"op": "remove", "path": "/spec/nodeName"}],
        )
    assert as_merge.value.status == 400
    assert (
        "cannot unmarshal array into Go value of type map[string]interface {}"
        in _error(as_merge)["message"]
    )

    with pytest.raises(ApiException) as failed_test:
        custom.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            "default",
            PLURAL,
            "patchy",
            [
                {"op": "replace", "path": "/spec/nodeName", "value": "x"},
                {"op": "test", "path": "/spec/nodeName", "value": "edge9"},
            ],
            _content_type="application/json-patch+json",
        )
    assert failed_test.value.status == 422
    assert _get(custom, "patchy")["spec"]["nodeName"] == "edge9", "a failed patch changes nothing"


def test_server_side_apply_creates_then_merges(custom: client.CustomObjectsApi) -> None:
    def apply(spec: dict[str, Any]) -> tuple[dict, int]:
        body = {
            "apiVersion": "sedna.io/v1alpha1",
            "kind": "Dataset",
            "metadata": {"name": "ssa-py"},
            "spec": spec,
        }
        data, status, _ = custom.patch_namespaced_custom_object_with_http_info(
            GROUP,
            VERSION,
            "default",
            PLURAL,
            "ssa-py",
            body,
            field_manager="test",
            _content_type="application/apply-patch+yaml",
        )
        return data, status

    _, status = apply({"url": "/d", "format": "txt"})
    # The generated client declares a body only for 200, so it returns none for the 201.
    assert status == 201
    created = _get(custom, "ssa-py")
    assert created["spec"]["format"] == "txt"
    updated, status = apply({"url": "/d", "format": "csv", "tags": ["x"]})
    assert status == 200 and updated["spec"]["format"] == "csv" and updated["spec"]["tags"] == ["x"]
    assert updated["metadata"]["uid"] == created["metadata"]["uid"]


def test_unknown_fields_are_pruned_without_strict_and_refused_with_it(
    custom: client.CustomObjectsApi,
) -> None:
    body = dataset("pruned", bogus=1)
    created = _create(custom, body)
    assert "bogus" not in created["spec"]
    with pytest.raises(ApiException) as strict:
        custom.create_namespaced_custom_object(
            GROUP, VERSION, "default", PLURAL, dataset("strict", bogus=1), field_validation="Strict"
        )
    assert strict.value.status == 400
    assert _error(strict)["message"] == (
        'Dataset in version "v1alpha1" cannot be handled as a Dataset: strict decoding error: '
        'unknown field "spec.bogus"'
    )


def test_dry_run_never_persists(custom: client.CustomObjectsApi) -> None:
    created = _create(custom, dataset("dry-kept"))
    before = created["metadata"]["resourceVersion"]
    would_be = custom.create_namespaced_custom_object(
        GROUP, VERSION, "default", PLURAL, dataset("dry-new"), dry_run="All"
    )
    assert would_be["metadata"]["name"] == "dry-new"
    custom.patch_namespaced_custom_object(
        GROUP, VERSION, "default", PLURAL, "dry-kept", {"spec": {"format": "txt"}}, dry_run="All"
    )
    custom.delete_namespaced_custom_object(
        GROUP, VERSION, "default", PLURAL, "dry-kept", dry_run="All"
    )
    kept = _get(custom, "dry-kept")
    assert kept["spec"]["format"] == "csv" and kept["metadata"]["resourceVersion"] == before
    with pytest.raises(ApiException) as missing:
        _get(custom, "dry-new")
    assert missing.value.status == 404


def test_watch_from_a_resource_version_and_from_scratch(custom: client.CustomObjectsApi) -> None:
    _create(custom, dataset("w-existing"))
    listed = custom.list_namespaced_custom_object(GROUP, VERSION, "default", PLURAL)
    start = listed["metadata"]["resourceVersion"]
    body = dataset("w-new")
    body["metadata"]["labels"] = {"watch": "me"}
    _create(custom, body)
    custom.patch_namespaced_custom_object(
        GROUP, VERSION, "default", PLURAL, "w-new", {"spec": {"format": "txt"}}
    )
    custom.patch_namespaced_custom_object(
        GROUP, VERSION, "default", PLURAL, "w-new", {"metadata": {"labels": {"watch": "no"}}}
    )
    custom.delete_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "w-new")

    stream = watch.Watch().stream(
        custom.list_namespaced_custom_object,
        GROUP,
        VERSION,
        "default",
        PLURAL,
        resource_version=start,
        timeout_seconds=1,
    )
    events = [(e["type"], e["object"]["metadata"]["name"]) for e in stream]
    assert events == [
        ("ADDED", "w-new"),
        ("MODIFIED", "w-new"),
        ("MODIFIED", "w-new"),
        ("DELETED", "w-new"),
    ]

    selected = watch.Watch().stream(
        custom.list_namespaced_custom_object,
        GROUP,
        VERSION,
        "default",
        PLURAL,
        resource_version=start,
        timeout_seconds=1,
        label_selector="watch=me",
    )
    assert [e["type"] for e in selected] == ["ADDED", "MODIFIED", "DELETED"], (
        "leaving the selector is a DELETED for this watcher"
    )

    fresh = watch.Watch().stream(
        custom.list_namespaced_custom_object,
        GROUP,
        VERSION,
        "default",
        PLURAL,
        timeout_seconds=1,
        field_selector="metadata.name=w-existing",
    )
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in fresh] == [
        ("ADDED", "w-existing")
    ]


def test_finalizers_hold_deletion_until_removed(custom: client.CustomObjectsApi) -> None:
    body = dataset("held")
    body["metadata"]["finalizers"] = ["sedna.io/cleanup"]
    created = _create(custom, body)
    marked = custom.delete_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "held")
    assert marked["kind"] == "Dataset" and marked["metadata"]["deletionTimestamp"]
    assert marked["metadata"]["generation"] == created["metadata"]["generation"] + 1
    with pytest.raises(ApiException) as no_new:
        custom.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            "default",
            PLURAL,
            "held",
            {"metadata": {"finalizers": ["sedna.io/cleanup", "other.io/x"]}},
        )
    assert no_new.value.status == 422
    assert (
        "no new finalizers can be added if the object is being deleted" in _error(no_new)["message"]
    )
    start = _get(custom, "held")["metadata"]["resourceVersion"]
    custom.patch_namespaced_custom_object(
        GROUP, VERSION, "default", PLURAL, "held", {"metadata": {"finalizers": None}}
    )
    with pytest.raises(ApiException) as gone:
        _get(custom, "held")
    assert gone.value.status == 404
    events = watch.Watch().stream(
        custom.list_namespaced_custom_object,
        GROUP,
        VERSION,
        "default",
        PLURAL,
        resource_version=start,
        timeout_seconds=1,
        field_selector="metadata.name=held",
    )
    assert [e["type"] for e in events] == ["DELETED"]


def test_garbage_collection_of_dependents(
    custom: client.CustomObjectsApi, api_client: client.ApiClient
) -> None:
    owner = _create(custom, dataset("owner"))
    reference = {
        "apiVersion": "sedna.io/v1alpha1",
        "kind": "Dataset",
        "name": "owner",
        "uid": owner["metadata"]["uid"],
        "controller": True,
    }
    core = client.CoreV1Api(api_client)
    for name in ("dependent-pod", "orphan-pod"):
        core.create_namespaced_pod(
            "default",
            {
                "metadata": {"name": name, "ownerReferences": [reference]},
                "spec": {
                    "containers": [{"name": "worker", "image": "python:3"}],
                    "nodeName": "edge0",
                },
            },
        )
    core.patch_namespaced_pod("orphan-pod", "default", {"metadata": {"ownerReferences": None}})
    pod = core.read_namespaced_pod("orphan-pod", "default")
    assert pod.metadata.owner_references is None and pod.status.phase == "Pending"
    assert [
        p.metadata.name
        for p in core.list_namespaced_pod("default", field_selector="spec.nodeName=edge0").items
    ] == ["dependent-pod", "orphan-pod"]

    custom.delete_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, "owner")
    remaining = [p.metadata.name for p in core.list_namespaced_pod("default").items]
    assert "dependent-pod" not in remaining and "orphan-pod" in remaining


def test_leases_for_leader_election(api_client: client.ApiClient) -> None:
    coordination = client.CoordinationV1Api(api_client)
    lease = coordination.create_namespaced_lease(
        "default",
        {
            "metadata": {"name": "sedna-gm"},
            "spec": {
                "holderIdentity": "gm-1",
                "leaseDurationSeconds": 15,
                "acquireTime": "2026-01-01T00:00:00.000000Z",
                "renewTime": "2026-01-01T00:00:00.000000Z",
            },
        },
    )
    assert lease.spec.holder_identity == "gm-1"
    lease.spec.holder_identity = "gm-2"
    updated = coordination.replace_namespaced_lease("sedna-gm", "default", lease)
    assert updated.spec.holder_identity == "gm-2"
    with pytest.raises(ApiException) as stale:
        coordination.replace_namespaced_lease("sedna-gm", "default", lease)
    assert stale.value.status == 409


def test_crds_through_the_api(api_client: client.ApiClient) -> None:
    extensions = client.ApiextensionsV1Api(api_client)
    names = [crd.metadata.name for crd in extensions.list_custom_resource_definition().items]
    assert {
        "datasets.sedna.io",
        "jointinferenceservices.neptune.io",
        "jointinferenceservices.sedna.io",
    } <= set(names)
    crd = extensions.read_custom_resource_definition("datasets.sedna.io")
    assert {c.type: c.status for c in crd.status.conditions} == {
        "NamesAccepted": "True",
        "Established": "True",
    }
    assert crd.status.stored_versions == ["v1alpha1"]

    with pytest.raises(ApiException) as invalid:
        extensions.create_custom_resource_definition(
            {
                "apiVersion": "apiextensions.k8s.io/v1",
                "kind": "CustomResourceDefinition",
                "metadata": {"name": "wrong.example.com"},
                "spec": {
                    "group": "example.com",
                    "names": {"kind": "Thing", "plural": "things"},
                    "scope": "Somewhere",
                    "versions": [{"name": "v1", "served": True, "storage": True}],
                },
            }
        )
    assert invalid.value.status == 422
    message = _error(invalid)["message"]
    assert (
        'spec.scope: Unsupported value: "Somewhere": supported values: "Cluster", "Namespaced"'
        in message
    )
    assert (
        'metadata.name: Invalid value: "wrong.example.com": must be '
        'spec.names.plural+"."+spec.group' in message
    )
    assert (
        "spec.versions[0].schema.openAPIV3Schema: Required value: schemas are required" in message
    )
