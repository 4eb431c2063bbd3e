"""The embedded API server at the HTTP level, and its lifecycle (restart, lock, CLI)."""

from __future__ import annotations

import http.client
import json
import os
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config, watch
from kubernetes.client import ApiException

from apiserver import ApiServer, ApiServerError
from tests.apiserver_fixtures import Kubectl, crds_for_tests, dataset

TABLE = (
    "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;"
    "g=meta.k8s.io,application/json"
)
AGGREGATED = (
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
    "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json"
)
DATASETS = "/apis/sedna.io/v1alpha1/namespaces/default/datasets"


def _connect(server: ApiServer) -> http.client.HTTPSConnection:
    context = ssl.create_default_context(cafile=str(server.ca_file))
    return http.client.HTTPSConnection("127.0.0.1", server.port, context=context, timeout=30)


def call(
    server: ApiServer,
    method: str,
    path: str,
    body: Any = None,
    *,
    token: str | None = "server",
    accept: str = "application/json",
    content_type: str = "application/json",
) -> tuple[int, dict[str, str], Any]:
    """One HTTPS request; returns status, headers and the decoded JSON (or raw text) body."""
    headers = {"Accept": accept, "Content-Type": content_type}
    if token is not None:
        headers["Authorization"] = f"Bearer {server.token if token == 'server' else token}"
    connection = _connect(server)
    try:
        payload = body if isinstance(body, bytes | None) else json.dumps(body).encode()
        connection.request(method, path, body=payload, headers=headers)
        response = connection.getresponse()
        data = response.read()
        try:
            decoded: Any = json.loads(data)
        except ValueError:
            decoded = data.decode()
        return response.status, dict(response.getheaders()), decoded
    finally:
        connection.close()


def watch_lines(server: ApiServer, path: str, accept: str = "application/json") -> Iterator[dict]:
    """The events of a watch request, one decoded JSON line at a time."""
    connection = _connect(server)
    connection.request(
        "GET", path, headers={"Accept": accept, "Authorization": f"Bearer {server.token}"}
    )
    response = connection.getresponse()
    assert response.status == 200
    assert response.getheader("Transfer-Encoding") == "chunked"
    try:
        while line := response.readline():
            yield json.loads(line)
    finally:
        connection.close()


def test_bearer_token_is_required_except_for_version(api_server: ApiServer) -> None:
    status, _, body = call(api_server, "GET", "/api/v1/namespaces", token=None)
    assert status == 401
    assert body == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "Unauthorized",
        "reason": "Unauthorized",
        "code": 401,
    }
    assert call(api_server, "GET", "/api/v1/namespaces", token="wrong")[0] == 401
    status, _, version = call(api_server, "GET", "/version?timeout=5s", token=None)
    assert status == 200 and version["minor"] == "32" and version["major"] == "1"
    assert call(api_server, "GET", "/healthz", token=None)[:1] == (200,)


def test_unknown_paths_and_methods(api_server: ApiServer) -> None:
    status, _, body = call(api_server, "GET", "/apis/nosuch.io/v1/things")
    assert status == 404 and body["reason"] == "NotFound"
    assert call(api_server, "GET", "/apis/sedna.io/v1/datasets")[0] == 404
    assert call(api_server, "POST", "/apis/sedna.io/v1alpha1/datasets", dataset("x"))[0] == 405
    assert call(api_server, "POST", f"{DATASETS}/x", dataset("x"))[0] == 405
    status, _, body = call(api_server, "POST", DATASETS, b"{not json")
    assert status == 400 and "json parse error" in body["message"]
    status, _, body = call(
        api_server,
        "PATCH",
        f"{DATASETS}/x",
        {"spec": {}},
        content_type="application/strategic-merge-patch+json",
    )
    assert status == 415 and body["reason"] == "UnsupportedMediaType"


def test_table_output_uses_printer_columns(api_server: ApiServer) -> None:
    assert call(api_server, "POST", DATASETS, dataset("tabled"))[0] == 201
    status, _, table = call(api_server, "GET", f"{DATASETS}?limit=500", accept=TABLE)
    assert status == 200 and table["kind"] == "Table" and table["apiVersion"] == "meta.k8s.io/v1"
    columns = [(c["name"], c["type"], c["priority"]) for c in table["columnDefinitions"]]
    assert columns == [
        ("Name", "string", 0),
        ("NodeName", "string", 0),
        ("Format", "string", 0),
        ("Samples", "integer", 1),
        ("Age", "date", 0),
    ]
    row = next(r for r in table["rows"] if r["cells"][0] == "tabled")
    assert row["cells"][1:4] == ["edge0", "csv", None]
    assert row["cells"][4].endswith("s")
    assert row["object"]["kind"] == "PartialObjectMetadata"
    assert row["object"]["metadata"]["name"] == "tabled"
    assert int(table["metadata"]["resourceVersion"]) >= int(
        row["object"]["metadata"]["resourceVersion"]
    )

    _, _, single = call(api_server, "GET", f"{DATASETS}/tabled?includeObject=Object", accept=TABLE)
    assert len(single["rows"]) == 1 and single["rows"][0]["object"]["spec"]["format"] == "csv"


def test_discovery_aggregated_and_legacy(api_server: ApiServer) -> None:
    status, headers, body = call(api_server, "GET", "/apis?timeout=32s", accept=AGGREGATED)
    assert status == 200
    assert (
        headers["Content-Type"]
        == "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
    )
    # As kube-apiserver: built-in groups by their priority, then CRD groups by name.
    groups = [item["metadata"]["name"] for item in body["items"]]
    in_server_order = ["apiextensions.k8s.io", "coordination.k8s.io", "neptune.io", "sedna.io"]
    assert [g for g in groups if g in in_server_order] == in_server_order

    _, _, legacy = call(api_server, "GET", "/apis")
    assert legacy["kind"] == "APIGroupList"
    assert [g["name"] for g in legacy["groups"] if g["name"] in in_server_order] == in_server_order
    _, _, core = call(api_server, "GET", "/api")
    assert core["kind"] == "APIVersions" and core["versions"] == ["v1"]
    _, _, resources = call(api_server, "GET", "/apis/sedna.io/v1alpha1")
    by_name = {r["name"]: r for r in resources["resources"]}
    assert (
        by_name["datasets"]["shortNames"] == ["dset"] and by_name["datasets"]["namespaced"] is True
    )
    assert by_name["datasets/status"]["verbs"] == ["get", "patch", "update"]
    _, _, core_v1 = call(api_server, "GET", "/api/v1")
    assert {"namespaces", "events", "pods", "nodes"} <= {r["name"] for r in core_v1["resources"]}


def test_openapi_v3_documents_and_hashes(api_server: ApiServer) -> None:
    _, _, index = call(api_server, "GET", "/openapi/v3")
    url = index["paths"]["apis/sedna.io/v1alpha1"]["serverRelativeURL"]
    assert url.startswith("/openapi/v3/apis/sedna.io/v1alpha1?hash=")
    status, headers, doc = call(api_server, "GET", url)
    assert status == 200 and headers["Etag"] == f'"{url.split("hash=")[1]}"'
    operation = doc["paths"]["/apis/sedna.io/v1alpha1/namespaces/{namespace}/datasets/{name}"][
        "patch"
    ]
    assert operation["x-kubernetes-group-version-kind"] == {
        "group": "sedna.io",
        "version": "v1alpha1",
        "kind": "Dataset",
    }
    assert "fieldValidation" in [p["name"] for p in operation["parameters"]]
    schema = doc["components"]["schemas"]["io.sedna.v1alpha1.Dataset"]
    assert schema["properties"]["spec"]["required"] == ["url", "format"]

    extensions = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "gizmos.sedna.io"},
        "spec": {
            "group": "sedna.io",
            "scope": "Namespaced",
            "names": {"kind": "Gizmo", "plural": "gizmos"},
            "versions": [
                {
                    "name": "v1alpha1",
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": {"type": "object"}},
                }
            ],
        },
    }
    assert (
        call(
            api_server,
            "POST",
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
            extensions,
        )[0]
        == 201
    )
    _, _, changed = call(api_server, "GET", "/openapi/v3")
    assert changed["paths"]["apis/sedna.io/v1alpha1"]["serverRelativeURL"] != url
    assert call(api_server, "GET", "/apis/sedna.io/v1alpha1/namespaces/default/gizmos")[0] == 200
    assert (
        call(
            api_server,
            "DELETE",
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/gizmos.sedna.io",
        )[0]
        == 200
    )
    assert call(api_server, "GET", "/apis/sedna.io/v1alpha1/namespaces/default/gizmos")[0] == 404


def test_watch_stream_framing_and_table_events(api_server: ApiServer) -> None:
    _, _, listed = call(api_server, "GET", DATASETS)
    start = listed["metadata"]["resourceVersion"]
    for name in ("framed-1", "framed-2"):
        assert call(api_server, "POST", DATASETS, dataset(name))[0] == 201
    events = list(
        watch_lines(api_server, f"{DATASETS}?watch=true&resourceVersion={start}&timeoutSeconds=1")
    )
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", "framed-1"),
        ("ADDED", "framed-2"),
    ]
    assert int(events[1]["object"]["metadata"]["resourceVersion"]) > int(
        events[0]["object"]["metadata"]["resourceVersion"]
    )

    tables = list(
        watch_lines(
            api_server,
            f"{DATASETS}?watch=true&resourceVersion={start}&timeoutSeconds=1",
            accept=TABLE,
        )
    )
    assert tables[0]["object"]["kind"] == "Table"
    assert [c["name"] for c in tables[0]["object"]["columnDefinitions"]][:2] == ["Name", "NodeName"]
    assert tables[1]["object"]["columnDefinitions"] is None
    assert tables[1]["object"]["rows"][0]["cells"][0] == "framed-2"

    status, _, body = call(api_server, "GET", f"{DATASETS}?watch=true&resourceVersion=abc")
    assert status == 400 and "resourceVersion" in body["message"]


@pytest.fixture
def small_history_server(tmp_path: Path) -> Iterator[ApiServer]:
    """A server keeping only 5 events of watch history."""
    server = ApiServer(tmp_path / "data", crds=crds_for_tests(), history_size=5)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_watch_from_a_compacted_resource_version_gets_410(
    small_history_server: ApiServer, tmp_path: Path
) -> None:
    server = small_history_server
    for index in range(12):
        assert call(server, "POST", DATASETS, dataset(f"churn-{index}"))[0] == 201
    events = list(watch_lines(server, f"{DATASETS}?watch=true&resourceVersion=1"))
    assert len(events) == 1
    error = events[0]
    assert error["type"] == "ERROR"
    assert error["object"]["code"] == 410 and error["object"]["reason"] == "Expired"
    assert error["object"]["message"].startswith("too old resource version: 1 (")

    kubeconfig = tmp_path / "kubeconfig"
    server.write_kubeconfig(kubeconfig)
    api = client.CustomObjectsApi(config.new_client_from_config(config_file=str(kubeconfig)))
    with pytest.raises(ApiException) as expired:
        for _ in watch.Watch().stream(
            api.list_namespaced_custom_object,
            "sedna.io",
            "v1alpha1",
            "default",
            "datasets",
            resource_version="1",
            timeout_seconds=2,
        ):
            pass
    assert expired.value.status == 410
    recent = api.list_namespaced_custom_object("sedna.io", "v1alpha1", "default", "datasets")
    assert len(recent["items"]) == 12, "a re-list after 410 sees everything"


def test_restart_keeps_objects_credentials_and_increasing_versions(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    kubeconfig = tmp_path / "kubeconfig"
    gadget_crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "gadgets.example.com"},
        "spec": {
            "group": "example.com",
            "scope": "Namespaced",
            "names": {"kind": "Gadget", "plural": "gadgets"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": True,
                        }
                    },
                }
            ],
        },
    }
    with ApiServer(data_dir, crds=crds_for_tests()) as first:
        first.write_kubeconfig(kubeconfig)
        token, ca = first.token, first.ca_file.read_bytes()
        assert call(first, "POST", DATASETS, dataset("survivor"))[0] == 201
        assert (
            call(
                first, "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", gadget_crd
            )[0]
            == 201
        )
        status, _, gadget = call(
            first,
            "POST",
            "/apis/example.com/v1/namespaces/default/gadgets",
            {"apiVersion": "example.com/v1", "kind": "Gadget", "metadata": {"name": "g"}},
        )
        assert status == 201
        _, _, before = call(first, "GET", f"{DATASETS}/survivor")
        last_rv = first.resource_version
        assert int(gadget["metadata"]["resourceVersion"]) == last_rv

    with ApiServer(data_dir, crds=crds_for_tests()) as second:
        assert second.token == token and second.ca_file.read_bytes() == ca
        assert second.resource_version == last_rv, "re-installing unchanged CRDs writes nothing"
        _, _, after = call(second, "GET", f"{DATASETS}/survivor")
        assert after == before
        assert call(second, "GET", "/apis/example.com/v1/namespaces/default/gadgets/g")[0] == 200
        status, _, patched = call(
            second,
            "PATCH",
            f"{DATASETS}/survivor",
            {"spec": {"format": "txt"}},
            content_type="application/merge-patch+json",
        )
        assert status == 200 and int(patched["metadata"]["resourceVersion"]) == last_rv + 1
        # A watch from before the restart resumes from the persisted history.
        events = list(
            watch_lines(second, f"{DATASETS}?watch=true&resourceVersion={last_rv}&timeoutSeconds=1")
        )
        assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
            ("MODIFIED", "survivor")
        ]

        # The kubeconfig written before the restart still works.
        kubectl = Kubectl(kubeconfig.with_name("stale"), tmp_path / "cache")
        second.write_kubeconfig(kubectl.kubeconfig)
        assert "survivor" in kubectl.ok("get", "datasets")


def test_a_data_dir_serves_one_server_at_a_time(tmp_path: Path) -> None:
    with (
        ApiServer(tmp_path / "data"),
        pytest.raises(ApiServerError, match="used by another running API server"),
    ):
        ApiServer(tmp_path / "data").start()
    server = ApiServer(tmp_path / "data")
    server.start()
    server.stop()
    server.stop()
    with pytest.raises(ApiServerError, match="not running"):
        _ = server.url


def test_invalid_builtin_crd_refuses_to_start(tmp_path: Path) -> None:
    bad = crds_for_tests()[0]
    bad["spec"]["scope"] = "Nowhere"
    server = ApiServer(tmp_path / "data", crds=[bad])
    with pytest.raises(ApiServerError, match=r'spec\.scope: Unsupported value: "Nowhere"'):
        server.start()
    # The data directory is free again after the failed start.
    with ApiServer(tmp_path / "data") as again:
        assert again.port > 0


def test_python_dash_m_apiserver_runs_and_stops_on_sigterm(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    process = subprocess.Popen(
        [sys.executable, "-m", "apiserver", "--data-dir", str(data_dir), "--no-builtin-crds"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        deadline = time.monotonic() + 30
        while not (data_dir / "kubeconfig").exists():
            assert process.poll() is None, process.stdout.read() if process.stdout else ""
            assert time.monotonic() < deadline, "no kubeconfig written"
            time.sleep(0.1)
        kubectl = Kubectl(data_dir / "kubeconfig", tmp_path / "cache")
        assert "default" in kubectl.ok("get", "ns")
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output
    assert "serving at https://127.0.0.1:" in output and "stopping" in output


def test_a_crd_held_by_a_finalizer_is_unserved_only_when_it_goes(api_server: ApiServer) -> None:
    crds = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com", "finalizers": ["example.com/keep"]},
        "spec": {
            "group": "example.com",
            "scope": "Cluster",
            "names": {"kind": "Widget", "plural": "widgets"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": {"type": "object"}},
                }
            ],
        },
    }
    assert call(api_server, "POST", crds, crd)[0] == 201
    widget = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
    assert call(api_server, "POST", "/apis/example.com/v1/widgets", widget)[0] == 201
    status, _, marked = call(api_server, "DELETE", f"{crds}/widgets.example.com")
    assert status == 200 and marked["metadata"]["deletionTimestamp"]
    assert call(api_server, "GET", "/apis/example.com/v1/widgets/w")[0] == 200, "still served"

    status, _, _ = call(
        api_server,
        "PATCH",
        f"{crds}/widgets.example.com",
        {"metadata": {"finalizers": None}},
        content_type="application/merge-patch+json",
    )
    assert status == 200
    assert call(api_server, "GET", f"{crds}/widgets.example.com")[0] == 404
    assert call(api_server, "GET", "/apis/example.com/v1/widgets")[0] == 404
    assert call(api_server, "GET", "/apis/example.com")[0] == 404
