"""Every MQTT topic of the GM <-> LC bus: builders, parsers and subscription filters.

The scheme mirrors KubeEdge's cloudhub/edgehub (see ARCHITECTURE.md, "Bus contract"):

| topic                                               | direction | retained |
| --------------------------------------------------- | --------- | -------- |
| ``sedna/node/<node>/down/<kind>/<namespace>/<name>`` | GM -> LC  | yes      |
| ``sedna/node/<node>/down/workers/<namespace>/<name>`` | GM -> LC | yes      |
| ``sedna/node/<node>/down/reporters/<namespace>/<name>`` | GM -> LC | yes    |
| ``sedna/node/<node>/down/manifest``                 | GM -> LC  | yes      |
| ``sedna/node/<node>/down/snapshot``                 | GM -> LC  | yes      |
| ``sedna/node/<node>/up/<kind>/<namespace>/<name>``   | LC -> GM  | no       |
| ``sedna/node/<node>/state``                         | LC -> all | yes      |
| ``sedna/node/<node>/ack``                           | GM -> LC  | no       |

``kind`` is a Kubernetes Kind (UpperCamelCase, e.g. ``FederatedLearningJob``), so it can never be
confused with the reserved lower-case segments ``workers``, ``reporters`` and ``manifest``.
``workers`` carries a worker the LC runs; ``reporters`` one a kubelet runs on the node (the GM's
``pods`` backend), whose reports the LC takes (``apis.messages.ReportingWorker``).
``snapshot`` carries the node's whole desired state in one message (``apis.NodeSnapshot``):
the LC takes it at every (re)connect, and the per-object topics only live
(``down_live_filter``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

__all__ = [
    "GM_SHARE_GROUP",
    "GM_STATE_SUBSCRIPTION",
    "GM_UP_SUBSCRIPTION",
    "PREFIX",
    "AckTopic",
    "DownTopic",
    "InvalidTopic",
    "ManifestTopic",
    "ReporterTopic",
    "SnapshotTopic",
    "StateTopic",
    "Topic",
    "UpTopic",
    "WorkerTopic",
    "ack_topic",
    "down_filter",
    "down_live_filter",
    "down_topic",
    "manifest_topic",
    "parse_topic",
    "reporter_topic",
    "snapshot_topic",
    "state_topic",
    "strip_share",
    "up_filter",
    "up_topic",
    "validate_kind",
    "validate_name",
    "validate_namespace",
    "validate_node",
    "worker_topic",
]

PREFIX = "sedna/node"
GM_SHARE_GROUP = "gm"
#: The GM's subscription to every node's upstream messages (shared, so GM replicas split them).
GM_UP_SUBSCRIPTION = f"$share/{GM_SHARE_GROUP}/{PREFIX}/+/up/#"
#: The GM's subscription to every node's online/offline state.
GM_STATE_SUBSCRIPTION = f"{PREFIX}/+/state"

_WORKERS = "workers"
_REPORTERS = "reporters"
_MANIFEST = "manifest"
_SNAPSHOT = "snapshot"

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_KIND = re.compile(r"^[A-Z][A-Za-z0-9]*$")


class InvalidTopic(ValueError):
    """A topic, or a node/namespace/name/kind meant for one, does not fit the bus's scheme."""


def _check_subdomain(value: str, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidTopic(f"{what} must be a non-empty string, got {value!r}")
    if len(value) > 253:
        raise InvalidTopic(f"{what} {value!r} is longer than 253 characters")
    if not all(_DNS1123_LABEL.match(part) for part in value.split(".")):
        raise InvalidTopic(
            f"{what} {value!r} is not a DNS-1123 subdomain (lower-case letters, digits, '-' "
            "and '.', starting and ending with a letter or digit)"
        )
    return value


def validate_node(node: str) -> str:
    """Return ``node`` if it is a DNS-1123 subdomain, else raise `InvalidTopic`."""
    return _check_subdomain(node, "node name")


def validate_name(name: str) -> str:
    """Return ``name`` if it is a DNS-1123 subdomain, else raise `InvalidTopic`."""
    return _check_subdomain(name, "object name")


def validate_namespace(namespace: str) -> str:
    """Return ``namespace`` if it is a DNS-1123 label, else raise `InvalidTopic`."""
    if not isinstance(namespace, str) or not _DNS1123_LABEL.match(namespace):
        raise InvalidTopic(
            f"namespace {namespace!r} is not a DNS-1123 label (lower-case letters, digits and "
            "'-', starting and ending with a letter or digit)"
        )
    if len(namespace) > 63:
        raise InvalidTopic(f"namespace {namespace!r} is longer than 63 characters")
    return namespace


def validate_kind(kind: str) -> str:
    """Return ``kind`` if it is a Kubernetes Kind (UpperCamelCase), else raise `InvalidTopic`."""
    if not isinstance(kind, str) or not _KIND.match(kind):
        raise InvalidTopic(
            f"kind {kind!r} is not a Kubernetes Kind (UpperCamelCase letters and digits, "
            "e.g. 'FederatedLearningJob')"
        )
    return kind


@dataclass(frozen=True, slots=True)
class DownTopic:
    """Desired state of one resource on one node (retained; empty payload = deleted)."""

    node: str
    kind: str
    namespace: str
    name: str

    def __post_init__(self) -> None:
        validate_node(self.node)
        validate_kind(self.kind)
        validate_namespace(self.namespace)
        validate_name(self.name)

    def __str__(self) -> str:
        return f"{PREFIX}/{self.node}/down/{self.kind}/{self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True)
class _WorkerOfNode:
    """A worker on a node: ``.../down/<segment>/<namespace>/<name>``."""

    segment: ClassVar[str]
    node: str
    namespace: str
    name: str

    def __post_init__(self) -> None:
        validate_node(self.node)
        validate_namespace(self.namespace)
        validate_name(self.name)

    def __str__(self) -> str:
        return f"{PREFIX}/{self.node}/down/{self.segment}/{self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True)
class WorkerTopic(_WorkerOfNode):
    """Pod spec of one worker the node's LC runs as a process (retained; empty = deleted)."""

    segment: ClassVar[str] = _WORKERS


@dataclass(frozen=True, slots=True)
class ReporterTopic(_WorkerOfNode):
    """A worker a kubelet runs on the node, whose reports its LC takes (retained; empty = gone)."""

    segment: ClassVar[str] = _REPORTERS


@dataclass(frozen=True, slots=True)
class ManifestTopic:
    """Keys and resourceVersions of everything the node should hold (retained)."""

    node: str

    def __post_init__(self) -> None:
        validate_node(self.node)

    def __str__(self) -> str:
        return f"{PREFIX}/{self.node}/down/{_MANIFEST}"


@dataclass(frozen=True, slots=True)
class SnapshotTopic:
    """The node's whole desired state in one message (retained; ``apis.NodeSnapshot``)."""

    node: str

    def __post_init__(self) -> None:
        validate_node(self.node)

    def __str__(self) -> str:
        return f"{PREFIX}/{self.node}/down/{_SNAPSHOT}"


@dataclass(frozen=True, slots=True)
class UpTopic:
    """An upstream message (an envelope) from the node's LC about one resource."""

    node: str
    kind: str
    namespace: str
    name: str

    def __post_init__(self) -> None:
        validate_node(self.node)
        validate_kind(self.kind)
        validate_namespace(self.namespace)
        validate_name(self.name)

    def __str__(self) -> str:
        return f"{PREFIX}/{self.node}/up/{self.kind}/{self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True)
class StateTopic:
    """The node's online/offline state (retained; the LC's last will says offline)."""

    node: str

    def __post_init__(self) -> None:
        validate_node(self.node)

    def __str__(self) -> str:
        return f"{PREFIX}/{self.node}/state"


@dataclass(frozen=True, slots=True)
class AckTopic:
    """The ids of upstream messages from this node that the GM has applied."""

    node: str

    def __post_init__(self) -> None:
        validate_node(self.node)

    def __str__(self) -> str:
        return f"{PREFIX}/{self.node}/ack"


Topic = (
    DownTopic
    | WorkerTopic
    | ReporterTopic
    | ManifestTopic
    | SnapshotTopic
    | UpTopic
    | StateTopic
    | AckTopic
)


def down_topic(node: str, kind: str, namespace: str, name: str) -> str:
    """``sedna/node/<node>/down/<kind>/<namespace>/<name>``."""
    return str(DownTopic(node, kind, namespace, name))


def worker_topic(node: str, namespace: str, name: str) -> str:
    """``sedna/node/<node>/down/workers/<namespace>/<name>``."""
    return str(WorkerTopic(node, namespace, name))


def reporter_topic(node: str, namespace: str, name: str) -> str:
    """``sedna/node/<node>/down/reporters/<namespace>/<name>``."""
    return str(ReporterTopic(node, namespace, name))


def manifest_topic(node: str) -> str:
    """``sedna/node/<node>/down/manifest``."""
    return str(ManifestTopic(node))


def snapshot_topic(node: str) -> str:
    """``sedna/node/<node>/down/snapshot``."""
    return str(SnapshotTopic(node))


def up_topic(node: str, kind: str, namespace: str, name: str) -> str:
    """``sedna/node/<node>/up/<kind>/<namespace>/<name>``."""
    return str(UpTopic(node, kind, namespace, name))


def state_topic(node: str) -> str:
    """``sedna/node/<node>/state``."""
    return str(StateTopic(node))


def ack_topic(node: str) -> str:
    """``sedna/node/<node>/ack``."""
    return str(AckTopic(node))


def down_filter(node: str) -> str:
    """The LC's subscription: everything the GM sends to ``node`` (``.../down/#``)."""
    return f"{PREFIX}/{validate_node(node)}/down/#"


def down_live_filter(node: str) -> str:
    """Every per-object message the GM sends to ``node`` (resources, workers, reporters:
    ``.../down/+/+/+``), without the manifest and the snapshot."""
    return f"{PREFIX}/{validate_node(node)}/down/+/+/+"


def up_filter(node: str) -> str:
    """Every upstream message of one node (``.../up/#``), e.g. for tools and tests."""
    return f"{PREFIX}/{validate_node(node)}/up/#"


def strip_share(topic_filter: str) -> str:
    """Return the plain filter of a shared subscription (``$share/<group>/<filter>``)."""
    if topic_filter.startswith("$share/"):
        parts = topic_filter.split("/", 2)
        if len(parts) != 3 or not parts[1] or not parts[2]:
            raise InvalidTopic(
                f"shared subscription {topic_filter!r} is not $share/<group>/<filter>"
            )
        return parts[2]
    return topic_filter


def parse_topic(topic: str) -> Topic:
    """Parse a concrete topic of the bus into its typed value, or raise `InvalidTopic`."""
    if not isinstance(topic, str):
        raise InvalidTopic(f"topic must be a string, got {type(topic).__name__}")
    parts = topic.split("/")
    if len(parts) < 4 or parts[0] != "sedna" or parts[1] != "node":
        raise InvalidTopic(f"topic {topic!r} does not start with '{PREFIX}/<node>/'")
    node, direction, rest = parts[2], parts[3], parts[4:]
    try:
        if direction == "down":
            if rest == [_MANIFEST]:
                return ManifestTopic(node)
            if rest == [_SNAPSHOT]:
                return SnapshotTopic(node)
            if len(rest) == 3 and rest[0] == _WORKERS:
                return WorkerTopic(node, rest[1], rest[2])
            if len(rest) == 3 and rest[0] == _REPORTERS:
                return ReporterTopic(node, rest[1], rest[2])
            if len(rest) == 3:
                return DownTopic(node, *rest)
            raise InvalidTopic(
                f"topic {topic!r}: expected down/<kind>/<namespace>/<name>, "
                "down/workers/<namespace>/<name>, down/reporters/<namespace>/<name>, "
                "down/manifest or down/snapshot"
            )
        if direction == "up":
            if len(rest) == 3:
                return UpTopic(node, *rest)
            raise InvalidTopic(f"topic {topic!r}: expected up/<kind>/<namespace>/<name>")
        if direction == "state" and not rest:
            return StateTopic(node)
        if direction == "ack" and not rest:
            return AckTopic(node)
    except InvalidTopic as err:
        if str(err).startswith("topic "):
            raise
        raise InvalidTopic(f"topic {topic!r}: {err}") from None
    raise InvalidTopic(
        f"topic {topic!r}: after '{PREFIX}/<node>/' expected 'down/...', 'up/...', 'state' or 'ack'"
    )
