"""Node objects from LC presence: ``sedna/node/<node>/state`` becomes the Node's Ready condition.

Recorded by a thread of its own (the latest state of each node), never on the bus thread.

A node the GM hears of for the first time gets a Node object (label ``sedna.io/lc=true``),
unless a kubelet owns the Nodes (the ``pods`` backend); listeners (``sedna up`` shows node
state) are told of every change. A state the cached Node already shows (the retained states a
restarted GM receives again) costs no API call (two thousand of them at a thousand nodes).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from broker import BusMessage, MalformedMessage, NodeState, topics
from gm.metrics import GMMetrics

log = logging.getLogger(__name__)

NodeListener = Callable[[str, str], None]
#: The cached Node object of a name, or None.
NodeLookup = Callable[[str], Mapping[str, Any] | None]

#: The label of Nodes an LC serves.
LC_LABEL = "sedna.io/lc"


class NodeRecorder:
    """Records each LC's online/offline state on its Node object."""

    def __init__(
        self,
        core: client.CoreV1Api,
        metrics: GMMetrics,
        *,
        record: bool = True,
        cached: NodeLookup | None = None,
    ) -> None:
        self._core = core
        self._metrics = metrics
        self._record_nodes = record  # False: someone else (a kubelet) owns the Node objects
        self._cached = cached
        self._lock = threading.Lock()
        self._online: set[str] = set()
        # The latest state of each node not recorded yet, for the writer thread: the bus
        # thread never waits for the API (a storm of reconnects would hold up every upstream
        # message behind it), and a node that flapped meanwhile costs one write.
        self._due: dict[str, NodeState] = {}
        self._due_changed = threading.Condition(self._lock)
        self._writer: threading.Thread | None = None
        self._closed = False
        #: Called with (node, "online"/"offline") whenever an LC's state changes.
        self.listeners: list[NodeListener] = []

    def close(self) -> None:
        """Stop the writer (states not recorded yet are recorded by the next GM)."""
        with self._lock:
            self._closed = True
            self._due_changed.notify_all()

    def online(self) -> set[str]:
        """The nodes whose last state says online."""
        with self._lock:
            return set(self._online)

    def on_state(self, message: BusMessage) -> None:
        """Handle one retained state message (bus dispatcher thread)."""
        try:
            topic = topics.parse_topic(message.topic)
            if not message.payload:
                return
            state = NodeState.from_bytes(message.payload)
        except (topics.InvalidTopic, MalformedMessage) as exc:
            self._metrics.malformed.labels(source="state").inc()
            log.error("dropping bad node state: %s", exc, extra={"topic": message.topic})
            return
        node = topic.node
        log.info("node %s is %s", node, state.state, extra={"node": node, "state": state.state})
        online = state.state == "online"
        with self._lock:
            if online:
                self._online.add(node)
            else:
                self._online.discard(node)
        self._metrics.node_online.labels(node=node).set(1 if online else 0)
        for listener in self.listeners:
            listener(node, state.state)
        if not self._record_nodes:
            return
        with self._lock:
            self._due[node] = state
            if self._writer is None:
                self._writer = threading.Thread(target=self._write, name="gm-nodes", daemon=True)
                self._writer.start()
            self._due_changed.notify()

    def _write(self) -> None:
        """Record the due states on their Node objects, oldest first (writer thread)."""
        while True:
            with self._lock:
                while not self._due and not self._closed:
                    self._due_changed.wait()
                if self._closed:
                    return
                node = next(iter(self._due))
                state = self._due.pop(node)
            try:
                self._record(node, state)
            except ApiException as exc:
                log.warning("could not record node state: %s", exc.reason, extra={"node": node})
            except Exception:
                log.exception("recording node state failed", extra={"node": node})

    def _record(self, node: str, state: NodeState) -> None:
        online = state.state == "online"
        ready = {
            "type": "Ready",
            "status": "True" if online else "False",
            "reason": "LocalControllerOnline" if online else "LocalControllerGone",
            "lastHeartbeatTime": state.time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "message": f"LC {state.version}".strip(),
        }
        endpoint = state.log_port if online else None
        if self._shown(node, ready, endpoint):
            return
        try:
            self._core.read_node(node)
        except ApiException as exc:
            if exc.status != 404:
                raise
            body = {"metadata": {"name": node, "labels": {"sedna.io/lc": "true"}}}
            self._core.create_node(body)
        status: dict[str, object] = {"conditions": [ready]}
        if endpoint:  # where the API server reads its workers' logs
            status["daemonEndpoints"] = {"kubeletEndpoint": {"Port": endpoint}}
        self._core.patch_node_status(node, {"status": status})

    def _shown(self, node: str, ready: dict[str, str], endpoint: int | None) -> bool:
        """Whether the cached Node already shows this Ready condition (and log port)."""
        cached = self._cached(node) if self._cached is not None else None
        if not cached:
            return False
        status = cached.get("status") or {}
        shown = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {})
        if any(shown.get(k) != ready[k] for k in ("status", "reason", "message")):
            return False
        if _time(shown.get("lastHeartbeatTime")) != _time(ready["lastHeartbeatTime"]):
            return False
        port = ((status.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get("Port")
        return not endpoint or port == endpoint


def _time(value: object) -> datetime | None:
    """A heartbeat time as the API returns it (RFC 3339 text or, from a typed client, a
    datetime)."""
    if isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return None
