"""The API server's ``pods/<name>/log`` for a Pod object (the ``pods`` backend's shape): the
node from ``spec.nodeName``, its LC's log endpoint from the Node status, the real parameters
(``container``, ``previous``, ``timestamps``, ``tailLines``) and errors that name what is wrong;
each node takes only its own token."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from apis import node_log_token
from apiserver import ApiServer
from gm.app import api_client_for
from lc.logserver import LogServer
from lc.runtime import ProcessRuntime, WorkerPhase
from tests.services import wait_for
from tests.test_logs_layout import fails_once

SECRET = "node-log-secret-for-tests"
NODE = "edge9"


@pytest.fixture(scope="module")
def core(tmp_path_factory: pytest.TempPathFactory) -> Iterator[client.CoreV1Api]:
    root = tmp_path_factory.mktemp("logs-route")
    server = ApiServer(root / "apiserver", node_log_secret=SECRET)
    server.start()
    server.write_kubeconfig(root / "kubeconfig")
    try:
        yield client.CoreV1Api(api_client_for(str(root / "kubeconfig")))
    finally:
        server.stop()


@pytest.fixture
def runtime(redis_client: redis.Redis, tmp_path: Path) -> Iterator[ProcessRuntime]:
    prefix = f"test-route-{uuid.uuid4().hex[:8]}"
    made = ProcessRuntime(
        redis_client, tmp_path / "lc", node=NODE, poll_interval=0.05, backoff_base=0.05,
        key_prefix=prefix,
    )  # fmt: skip
    made.start()
    yield made
    made.close()
    made.remove_all()


def node(core: client.CoreV1Api, name: str, port: int | None) -> None:
    """A Node at 127.0.0.1 whose status names ``port`` as its log endpoint."""
    try:
        core.create_node({"metadata": {"name": name}})
    except ApiException as exc:
        assert exc.status == 409
    status: dict[str, object] = {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"}]}
    status["daemonEndpoints"] = {"kubeletEndpoint": {"Port": port or 0}}
    core.patch_node_status(name, {"status": status})


def pod(core: client.CoreV1Api, name: str, node_name: str | None) -> None:
    spec: dict[str, object] = {"containers": [{"name": "main", "image": "x"}]}
    if node_name:
        spec["nodeName"] = node_name
    core.create_namespaced_pod("default", {"metadata": {"name": name}, "spec": spec})


def error_of(call) -> tuple[int, str]:
    """The HTTP status and the ``Status`` message of the API error ``call`` raises."""
    with pytest.raises(ApiException) as caught:
        call()
    return caught.value.status, json.loads(caught.value.body)["message"]


def test_a_pods_log_comes_from_its_node_with_the_real_parameters(
    core: client.CoreV1Api, runtime: ProcessRuntime, tmp_path: Path
) -> None:
    script = fails_once(
        tmp_path,
        """
        print("first run" if first else "second run")
        print("line two")
        """,
    )
    runtime.ensure(
        {
            "name": "pod-a",
            "namespace": "default",
            "template": {
                "spec": {
                    "restartPolicy": "OnFailure",
                    "containers": [{"name": "main", "args": [str(script)]}],
                }
            },
        }
    )
    wait_for(
        lambda: (s := runtime.status("pod-a")) and s.phase == WorkerPhase.SUCCEEDED,
        30,
        "the worker to fail once and succeed",
    )
    logs = LogServer(runtime, node=NODE, token=node_log_token(SECRET, NODE), port=0)
    logs.start()
    try:
        node(core, NODE, logs.port)
        pod(core, "pod-a", NODE)
        assert core.read_namespaced_pod_log("pod-a", "default") == "second run\nline two\n"
        previous = core.read_namespaced_pod_log("pod-a", "default", previous=True)
        assert previous == "first run\nline two\n"
        assert core.read_namespaced_pod_log("pod-a", "default", tail_lines=1) == "line two\n"
        stamped = core.read_namespaced_pod_log("pod-a", "default", timestamps=True)
        assert re.fullmatch(r"(\d{4}-\d\d-\d\dT\S+Z [a-z ]+\n){2}", stamped), stamped
        assert core.read_namespaced_pod_log("pod-a", "default", container="main")

        code, body = error_of(
            lambda: core.read_namespaced_pod_log("pod-a", "default", container="other")
        )
        assert code == 400 and "container other is not valid for pod pod-a" in body
        code, body = error_of(lambda: core.read_namespaced_pod_log("no-such-pod", "default"))
        assert code == 404 and 'pods "no-such-pod" not found' in body
        pod(core, "unscheduled", None)
        code, body = error_of(lambda: core.read_namespaced_pod_log("unscheduled", "default"))
        assert code == 400 and "not scheduled to a node" in body
    finally:
        logs.close()


def test_a_node_takes_only_its_own_token_and_says_when_it_has_no_endpoint(
    core: client.CoreV1Api, runtime: ProcessRuntime
) -> None:
    # An LC started with another node's token refuses what the API server sends for edge8.
    logs = LogServer(runtime, node="edge8", token=node_log_token(SECRET, "edge7"), port=0)
    logs.start()
    try:
        node(core, "edge8", logs.port)
        pod(core, "pod-b", "edge8")
        code, body = error_of(lambda: core.read_namespaced_pod_log("pod-b", "default"))
        assert code == 500 and "node edge8 refused the log request (401)" in body
    finally:
        logs.close()
    node(core, "edge6", None)
    pod(core, "pod-c", "edge6")
    code, body = error_of(lambda: core.read_namespaced_pod_log("pod-c", "default"))
    assert code == 503 and "node edge6 has no log endpoint" in body
    pod(core, "pod-d", "edge5")
    code, body = error_of(lambda: core.read_namespaced_pod_log("pod-d", "default"))
    assert code == 404 and 'node "edge5" does not exist' in body
