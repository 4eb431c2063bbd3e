"""Downstream: keep every node's retained topics equal to what the node should hold.

Each owner (a resource) declares its messages per topic; the publisher sends what changed at
once and clears (empty retained payload) what is gone. Then, for each node touched, it sends
the node's manifest and its snapshot (`apis.NodeSnapshot`: the node's whole desired state in
one message, ``generation`` growing) -- coalesced: the first change after a quiet spell goes
out at once, the changes that follow within ``flush_interval`` share one manifest and one
snapshot a node, so a burst of N jobs costs each node a few snapshots, not N manifests. An LC
takes the snapshot at every (re)connect: its whole desired state in one pass, deletions
included (see ``lc.agent``).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from apis import NodeSnapshot, ReportingWorker, SnapshotItem
from broker import BusClient, BusError, Manifest, ManifestItem, topics

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NodeMessage:
    """One retained message for one node: a resource or a worker pod."""

    node: str
    topic: str
    kind: str
    namespace: str
    name: str
    resource_version: str
    body: dict[str, Any]

    def payload(self) -> bytes:
        """The JSON payload."""
        return json.dumps(self.body, separators=(",", ":"), sort_keys=True).encode()

    def same_for_node(self, other: NodeMessage) -> bool:
        """Whether ``other`` differs only in what the node does not act on.

        Every status write gives the resource a new resourceVersion (and a new status); sending
        the resource, its workers and the node's manifest again for that would cost every LC a
        full sync per worker report.
        """
        return self.topic == other.topic and _node_view(self.body) == _node_view(other.body)


def _node_view(body: Mapping[str, Any]) -> dict[str, Any]:
    view = {k: v for k, v in body.items() if k != "status"}
    meta = view.get("metadata")
    if isinstance(meta, Mapping):
        view["metadata"] = {k: v for k, v in meta.items() if k != "resourceVersion"}
    return view


def resource_message(node: str, obj: Mapping[str, Any]) -> NodeMessage:
    """The retained message carrying a whole resource to ``node``."""
    meta = obj["metadata"]
    namespace = meta.get("namespace") or "default"
    return NodeMessage(
        node=node,
        topic=topics.down_topic(node, obj["kind"], namespace, meta["name"]),
        kind=obj["kind"],
        namespace=namespace,
        name=meta["name"],
        resource_version=str(meta.get("resourceVersion", "")),
        body=dict(obj),
    )


def worker_message(node: str, pod: Mapping[str, Any], resource_version: str) -> NodeMessage:
    """The retained message carrying a worker's pod spec to the LC of ``node``."""
    meta = pod["metadata"]
    return NodeMessage(
        node=node,
        topic=topics.worker_topic(node, meta["namespace"], meta["name"]),
        kind="Pod",
        namespace=meta["namespace"],
        name=meta["name"],
        resource_version=resource_version,
        body={**pod, "metadata": {**meta, "resourceVersion": resource_version}},
    )


def reporter_message(node: str, reporter: ReportingWorker, resource_version: str) -> NodeMessage:
    """The retained message telling the LC of ``node`` to take the reports of a worker a kubelet
    runs there (the ``pods`` backend)."""
    return NodeMessage(
        node=node,
        topic=topics.reporter_topic(node, reporter.namespace, reporter.name),
        kind=ReportingWorker.MANIFEST_KIND,
        namespace=reporter.namespace,
        name=reporter.name,
        resource_version=resource_version,
        body=reporter.to_api(),
    )


def _manifest(messages: list[NodeMessage]) -> Manifest:
    return Manifest(
        items=[
            ManifestItem(
                kind=m.kind, namespace=m.namespace, name=m.name, resource_version=m.resource_version
            )
            for m in messages
        ]
    )


def _snapshot(node: str, generation: int, messages: list[NodeMessage]) -> NodeSnapshot:
    items = [
        SnapshotItem(
            kind=m.kind,
            namespace=m.namespace,
            name=m.name,
            resource_version=m.resource_version,
            body=m.body,
        )
        for m in messages
    ]
    return NodeSnapshot(node=node, generation=generation, items=items)


class DownstreamPublisher:
    """Publishes the desired state of every node and clears what is no longer desired."""

    def __init__(self, bus: BusClient, *, flush_interval: float = 0.05) -> None:
        self._bus = bus
        self.flush_interval = flush_interval
        self._lock = threading.RLock()
        self._dirty: set[str] = set()  # nodes whose manifest and snapshot are to be sent
        self._generation = 0  # of the last snapshot sent (or seen retained at start-up)
        #: Snapshots sent, by node (for tests and benchmarks).
        self.snapshots_sent: dict[str, int] = {}
        self._wake = threading.Event()
        self._closed = threading.Event()
        self._flusher = threading.Thread(target=self._flush_loop, name="downstream", daemon=True)
        self._flusher.start()
        self._by_owner: dict[str, dict[str, NodeMessage]] = {}
        self._sent: dict[str, bytes] = {}  # topic -> payload the broker has
        self._orphans: set[str] = set()  # retained topics found on the broker, not yet claimed
        self._holding = False  # at start-up: manifests wait until every owner is declared
        self._held: set[str] = set()  # nodes whose manifest waits
        self._owner_of: dict[str, str] = {}  # topic -> owner whose message it is

    def set_owner(self, owner: str, messages: Iterable[NodeMessage]) -> None:
        """Declare every message ``owner`` needs; publish the difference."""
        with self._lock:
            new = {m.topic: m for m in messages}
            old = self._by_owner.get(owner, {})
            for topic, message in new.items():
                previous = old.get(topic)
                if previous is not None and previous.same_for_node(message):
                    new[topic] = previous  # keep what the node has, resourceVersion included
            if new:
                self._by_owner[owner] = new
            else:
                self._by_owner.pop(owner, None)
            for topic in old.keys() - new.keys():
                if self._owner_of.get(topic) == owner:
                    del self._owner_of[topic]
            self._owner_of.update(dict.fromkeys(new, owner))
            # Only the manifests of nodes whose share changed: building one costs O(node's size).
            touched = {m.node for t, m in new.items() if old.get(t) is not m}
            touched |= {m.node for t, m in old.items() if t not in new}
            for topic, message in new.items():
                self._orphans.discard(topic)
                self._send(topic, message.payload())
            for topic in old.keys() - new.keys():
                self._send(topic, b"")
            for node in touched:
                self._node_changed(node)

    def hold_manifests(self) -> None:
        """Send no manifest until :meth:`clear_orphans` (a GM starting up declares its owners one
        by one; a manifest sent before the last would tell an LC to stop the others' workers)."""
        with self._lock:
            self._holding = True

    def sent(self, topic: str) -> dict[str, Any] | None:
        """The body of the desired message on ``topic``, or None when the GM sends none there."""
        with self._lock:
            owner = self._owner_of.get(topic)
            message = self._by_owner.get(owner, {}).get(topic) if owner is not None else None
            return message.body if message is not None else None

    def remove_owner(self, owner: str) -> None:
        """``owner`` was deleted: clear its messages."""
        self.set_owner(owner, [])

    def note_retained(self, topic: str, payload: bytes) -> None:
        """A retained message seen on the broker (at start-up), to clear later if unclaimed;
        a snapshot's generation, so the next one is newer even if the clock went back."""
        try:
            parsed: object = topics.parse_topic(topic)
        except topics.InvalidTopic:
            parsed = None  # not one of ours: an orphan like any other
        with self._lock:
            if isinstance(parsed, topics.SnapshotTopic):
                try:
                    seen = NodeSnapshot.model_validate_json(payload).generation
                except ValidationError:
                    return
                self._generation = max(self._generation, seen)
            elif (
                payload and topic not in self._sent and not isinstance(parsed, topics.ManifestTopic)
            ):
                self._orphans.add(topic)
                self._sent[topic] = payload

    def clear_orphans(self) -> int:
        """Clear retained messages that no current owner claims and send the manifests held
        back since :meth:`hold_manifests`; returns how many messages were cleared."""
        with self._lock:
            orphans, self._orphans = self._orphans, set()
            nodes, self._held, self._holding = set(self._held), set(), False
            for topic in orphans:
                self._send(topic, b"")
                nodes.add(topic.split("/")[2])
            for node in nodes:
                self._node_changed(node)
            return len(orphans)

    def republish(self) -> None:
        """Send the whole desired state again (after the GM or the broker restarted)."""
        with self._lock:
            self._sent.clear()
            nodes = set()
            for messages in self._by_owner.values():
                for topic, message in messages.items():
                    self._send(topic, message.payload())
                    nodes.add(message.node)
            for node in nodes:
                self._node_changed(node)

    def manifest(self, node: str) -> Manifest:
        """What ``node`` should hold right now."""
        return _manifest(self._messages_of({node}).get(node, []))

    def snapshot(self, node: str, generation: int) -> NodeSnapshot:
        """Everything ``node`` should hold right now, as one message."""
        return _snapshot(node, generation, self._messages_of({node}).get(node, []))

    def flush(self) -> None:
        """Send the manifest and snapshot of every node changed since the last flush."""
        with self._lock:  # in order with the per-object messages: everything before is in it
            nodes, self._dirty = self._dirty, set()
            by_node = self._messages_of(nodes)  # one pass over all messages, not one a node
            for node in sorted(nodes):
                messages = by_node.get(node, [])
                self._send(topics.manifest_topic(node), _manifest(messages).to_bytes())
                self._generation = max(self._generation + 1, time.time_ns() // 1000)
                snapshot = _snapshot(node, self._generation, messages)
                self._send(topics.snapshot_topic(node), snapshot.model_dump_json(by_alias=True))
                self.snapshots_sent[node] = self.snapshots_sent.get(node, 0) + 1

    def _messages_of(self, nodes: set[str]) -> dict[str, list[NodeMessage]]:
        with self._lock:
            by_node: dict[str, list[NodeMessage]] = {}
            for messages in self._by_owner.values():
                for m in messages.values():
                    if m.node in nodes:
                        by_node.setdefault(m.node, []).append(m)
        for messages in by_node.values():
            messages.sort(key=lambda m: (m.kind, m.namespace, m.name))
        return by_node

    def close(self) -> None:
        """Stop the flusher (what it has not sent yet, the next GM sends)."""
        self._closed.set()
        self._wake.set()
        self._flusher.join(5)

    def _node_changed(self, node: str) -> None:
        if self._holding:
            self._held.add(node)
            return
        self._dirty.add(node)
        self._wake.set()

    def _flush_loop(self) -> None:
        while not self._closed.is_set():
            self._wake.wait()
            self._wake.clear()
            try:
                self.flush()
            except Exception:
                log.exception("sending manifests and snapshots failed")
            self._closed.wait(self.flush_interval)  # what changes meanwhile goes out together

    def _send(self, topic: str, payload: bytes | str) -> None:
        payload = payload.encode() if isinstance(payload, str) else payload
        if self._sent.get(topic) == payload or (not payload and topic not in self._sent):
            return
        if payload:
            self._sent[topic] = payload
        else:
            self._sent.pop(topic, None)
        try:
            future = self._bus.publish_async(topic, payload, retain=True)
        except BusError as exc:
            self._publish_failed(topic, payload, exc)
            return
        future.add_done_callback(
            lambda f: f.exception() and self._publish_failed(topic, payload, f.exception())
        )

    def _publish_failed(self, topic: str, payload: bytes, exc: BaseException | None) -> None:
        # Forget it was sent: the next change, or the republish on reconnect, sends it again.
        log.warning("downstream publish failed: %s", exc, extra={"topic": topic})
        with self._lock:
            if self._sent.get(topic) == payload:
                self._sent.pop(topic, None)
