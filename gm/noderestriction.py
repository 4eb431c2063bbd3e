"""Node authorization of upstream messages, as Kubernetes' NodeRestriction does for kubelets.

A node may speak only about what the GM itself sent it: a worker message only for a worker whose
pod the GM placed on that node for that very resource (sent to its LC to run, or, with the
``pods`` backend, announced to its LC as a reporter), a dataset message only for a Dataset the
GM sent to that node, any other message only about a resource the GM sent to that node. The
node is the one in the topic (the broker's ACL lets each node publish
only on its own topics), never one named in the payload. Everything else is refused: the GM
counts it, logs it with the node, and acknowledges it so the sender does not re-send it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from apis.messages import DatasetMessage, WorkerMessage
from broker import topics
from broker.topics import UpTopic

__all__ = ["Lookup", "refusal"]

#: The body of the retained message the GM sent on a down topic, or None when it sent none.
Lookup = Callable[[str], dict[str, Any] | None]


def refusal(topic: UpTopic, message: object, sent: Lookup) -> str | None:
    """Why the node of ``topic`` may not send ``message`` (None when it may)."""
    if isinstance(message, WorkerMessage):
        owner = _placed_owner(topic, message.worker, sent)
        if owner is None:
            return "worker-not-on-node"
        if (owner.get("kind"), owner.get("name")) != (topic.kind, topic.name):
            return "worker-of-another-resource"
        return None
    # A dataset count, or any other message about the resource itself: the node must hold it
    # (a kind's policy ignores the messages that are not for it).
    down = topics.down_topic(topic.node, topic.kind, topic.namespace, topic.name)
    if sent(down) is None:
        return "dataset-not-on-node" if isinstance(message, DatasetMessage) else "not-on-node"
    return None


def _placed_owner(topic: UpTopic, worker: str, sent: Lookup) -> dict[str, Any] | None:
    """The owner reference of ``worker`` as the GM placed it on the topic's node, or None."""
    pod = sent(topics.worker_topic(topic.node, topic.namespace, worker))
    if pod is not None:
        owners = (pod.get("metadata") or {}).get("ownerReferences") or [{}]
        return owners[0]
    reporter = sent(topics.reporter_topic(topic.node, topic.namespace, worker))
    return (reporter.get("owner") or {}) if reporter is not None else None
