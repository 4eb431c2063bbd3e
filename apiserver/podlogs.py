"""``GET /api/v1/namespaces/<ns>/pods/<name>/log``: a worker's log, read from its node's LC.

As the real API server asks the kubelet, this asks the LC of the worker's node: the node is the
Pod's ``spec.nodeName`` or, for a worker the LC runs as a process (no Pod object), the
``status.workers[].nodeName`` of the Sedna resource that owns it; the address is the Node's
``InternalIP`` and ``status.daemonEndpoints.kubeletEndpoint.Port`` (the LC announces it). The
request goes to ``/containerLogs/<ns>/<name>[/<container>]`` with the node's log token
(:func:`apis.node_log_token`) and the answer is copied back, streamed (chunked) when following.

Parameters are the real server's: ``container``, ``follow``, ``previous``, ``tailLines``,
``timestamps``. Errors are ``Status`` objects naming what is missing: the worker, the node, its
log endpoint, or that the node cannot be reached.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote, urlencode

from apis import node_log_token
from apiserver import errors as err
from apiserver.errors import ApiError
from apiserver.objects import ObjectService
from apiserver.registry import Registry

SEDNA_GROUP_SUFFIX = "sedna.io"
_PARAMS = ("container", "follow", "previous", "tailLines", "timestamps")
_CONNECT_TIMEOUT = 5.0
_IDLE_CHECK = 0.5  # how often a quiet follow looks whether its client is still there


class PodLogs:
    """Answers ``pods/<name>/log`` by asking the worker's node."""

    def __init__(self, registry: Registry, service: ObjectService, node_secret: str | None):
        self._registry = registry
        self._service = service
        self._secret = node_secret

    def read(
        self, namespace: str, name: str, query: dict[str, str], client_gone: Callable[[], bool]
    ) -> tuple[str, Iterator[bytes]]:
        """``(content type, body chunks)`` of the log, or raises :class:`ApiError`."""
        for key, value in query.items():
            if key == "tailLines" and not value.lstrip("-").isdigit():
                raise err.bad_request(f'tailLines: Invalid value: "{value}": must be an integer')
        node, container = self._locate(namespace, name, query.get("container"))
        host, port = self._endpoint(node)
        if self._secret is None:
            raise ApiError(
                503, "ServiceUnavailable", "this API server reads no node logs (no node secret)"
            )
        path = f"/containerLogs/{quote(namespace)}/{quote(name)}"
        if container:
            path += f"/{quote(container)}"
        params = {k: v for k, v in query.items() if k in _PARAMS and k != "container"}
        if params:
            path += "?" + urlencode(params)
        sock, status, headers, first = _get(
            host, port, path, node_log_token(self._secret, node), node
        )
        if status != 200:
            sock.close()
            raise _node_error(status, first, node, namespace, name)
        return headers.get("content-type", "text/plain"), _copy(sock, first, client_gone)

    def _locate(self, namespace: str, name: str, container: str | None) -> tuple[str, str | None]:
        """The worker's node and container (None: the node knows its only one)."""
        pods = self._registry.get("", "pods")
        obj: dict[str, Any] | None = None
        if pods is not None:
            try:
                obj = self._service.get(pods, "v1", namespace, name)
            except ApiError as exc:
                if exc.code != 404:
                    raise
        if obj is not None:
            spec = obj.get("spec") or {}
            names = [c.get("name") for c in spec.get("containers") or []]
            if container is not None and container not in names:
                raise err.bad_request(
                    f"container {container} is not valid for pod {name}"
                )  # the real server's wording
            node = spec.get("nodeName")
            if not node:
                raise err.bad_request(f"pod {name} is not scheduled to a node yet")
            return node, container or (names[0] if names else None)
        for rt in self._registry.types():
            if not rt.group.endswith(SEDNA_GROUP_SUFFIX) or not rt.namespaced:
                continue
            objects, _ = self._service.scan(rt, namespace)
            for owner in objects:
                for worker in (owner.get("status") or {}).get("workers") or []:
                    if worker.get("name") == name and worker.get("nodeName"):
                        return str(worker["nodeName"]), container
        raise ApiError(
            404,
            "NotFound",
            f'pods "{name}" not found: no Pod and no Sedna job in namespace {namespace} '
            "has a worker of that name",
        )

    def _endpoint(self, node: str) -> tuple[str, int]:
        nodes = self._registry.get("", "nodes")
        if nodes is None:
            raise err.path_not_found()
        try:
            obj = self._service.get(nodes, "v1", None, node)
        except ApiError as exc:
            if exc.code == 404:
                message = f'the worker\'s node "{node}" does not exist'
                raise ApiError(404, "NotFound", message) from None
            raise
        status = obj.get("status") or {}
        addresses = {a.get("type"): a.get("address") for a in status.get("addresses") or []}
        host = addresses.get("InternalIP") or addresses.get("Hostname")
        port = ((status.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get("Port")
        if not host or not port:
            raise ApiError(
                503,
                "ServiceUnavailable",
                f"node {node} has no log endpoint in its status (address {host or 'unknown'}, "
                "daemonEndpoints.kubeletEndpoint.Port unset): is its LC online?",
            )
        return str(host), int(port)


def _get(
    host: str, port: int, path: str, token: str, node: str
) -> tuple[socket.socket, int, dict[str, str], bytes]:
    """Send the request; ``(socket, status, headers, body bytes read so far)``."""
    try:
        sock = socket.create_connection((host, port), timeout=_CONNECT_TIMEOUT)
    except OSError as exc:
        raise ApiError(
            503, "ServiceUnavailable", f"node {node} is unreachable at {host}:{port}: {exc}"
        ) from None
    try:
        request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {token}\r\n"
            "Connection: close\r\n\r\n"
        )
        sock.sendall(request.encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                raise OSError("the connection closed before the response headers")
            data += chunk
            if len(data) > 65536:
                raise OSError("response headers too long")
    except OSError as exc:
        sock.close()
        raise ApiError(
            503, "ServiceUnavailable", f"node {node} ({host}:{port}) did not answer: {exc}"
        ) from None
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    try:
        status = int(lines[0].split()[1])
    except (IndexError, ValueError):
        sock.close()
        raise ApiError(502, "InternalError", f"node {node} answered {lines[0]!r}") from None
    headers = {}
    for line in lines[1:]:
        key, _, value = line.partition(":")
        headers[key.strip().lower()] = value.strip()
    return sock, status, headers, rest


def _node_error(status: int, body: bytes, node: str, namespace: str, name: str) -> ApiError:
    try:
        message = str(json.loads(body).get("message") or "")
    except (ValueError, AttributeError):
        message = body.decode("utf-8", "replace")[:200]
    if status == 404:
        return ApiError(404, "NotFound", message or f"node {node} has no log of {namespace}/{name}")
    if status == 400:
        return err.bad_request(message)
    return ApiError(
        500, "InternalError", f"node {node} refused the log request ({status}): {message}"
    )


def _copy(sock: socket.socket, first: bytes, client_gone: Callable[[], bool]) -> Iterator[bytes]:
    """The rest of the node's answer as it comes (never an empty chunk: it would end the
    stream); closing the socket when the client left lets the node stop following."""
    try:
        if first:
            yield first
        sock.settimeout(_IDLE_CHECK)
        while True:
            try:
                data = sock.recv(65536)
            except TimeoutError:
                if client_gone():
                    return
                continue
            if not data:
                return
            yield data
    finally:
        sock.close()
