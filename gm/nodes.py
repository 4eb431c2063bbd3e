"""Node objects from LC presence: ``sedna/node/<node>/state`` becomes the Node's Ready condition.

A node the GM hears of for the first time gets a Node object (label ``sedna.io/lc=true``),
unless a kubelet owns the Nodes (the ``pods`` backend); listeners (``sedna up`` shows node
state) are told of every change.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from broker import BusMessage, MalformedMessage, NodeState, topics
from gm.metrics import GMMetrics

log = logging.getLogger(__name__)

NodeListener = Callable[[str, str], None]


class NodeRecorder:
    """Records each LC's online/offline state on its Node object."""

    def __init__(self, core: client.CoreV1Api, metrics: GMMetrics, *, record: bool = True) -> None:
        self._core = core
        self._metrics = metrics
        self._record_nodes = record  # False: someone else (a kubelet) owns the Node objects
        #: Called with (node, "online"/"offline") whenever an LC's state changes.
        self.listeners: list[NodeListener] = []

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
        self._metrics.node_online.labels(node=node).set(1 if state.state == "online" else 0)
        for listener in self.listeners:
            listener(node, state.state)
        if not self._record_nodes:
            return
        try:
            self._record(node, state)
        except ApiException as exc:
            log.warning("could not record node state: %s", exc.reason, extra={"node": node})

    def _record(self, node: str, state: NodeState) -> None:
        online = state.state == "online"
        ready = {
            "type": "Ready",
            "status": "True" if online else "False",
            "reason": "LocalControllerOnline" if online else "LocalControllerGone",
            "lastHeartbeatTime": state.time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "message": f"LC {state.version}".strip(),
        }
        try:
            self._core.read_node(node)
        except ApiException as exc:
            if exc.status != 404:
                raise
            body = {"metadata": {"name": node, "labels": {"sedna.io/lc": "true"}}}
            self._core.create_node(body)
        status: dict[str, object] = {"conditions": [ready]}
        if online and state.log_port:  # where the API server reads its workers' logs
            status["daemonEndpoints"] = {"kubeletEndpoint": {"Port": state.log_port}}
        self._core.patch_node_status(node, {"status": status})
