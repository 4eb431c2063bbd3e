"""The GM's end of upstream messages: decode once, record, and queue the object's status write.

``broker.upstream.UpstreamReceiver`` calls :meth:`UpstreamRecorder.apply` for every message id it
has not seen applied, and acknowledges the message when ``apply`` returns. ``apply`` decodes the
payload into the typed union (``apis.messages.parse_upstream``), records it durably
(``gm.records``) and puts the object's key on the work queue, whose reconcile computes and
writes the status. Before that, node authorization (``gm.noderestriction``): a message about
what the GM did not place on the sending node is refused. A refused message, like a payload that
can never be applied, is counted, logged and dropped (returned from, so it is acknowledged and
not re-sent for ever).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from pydantic import ValidationError

from apis import KINDS, KindInfo, WorkerMessage, parse_upstream
from broker import Envelope, MalformedMessage, UpTopic
from gm.metrics import GMMetrics
from gm.noderestriction import Lookup, refusal
from gm.records import Records

log = logging.getLogger(__name__)

#: The work-queue key of an object: ``<plural>.<group>/<namespace>/<name>``.
KeyOf = Callable[[KindInfo, str, str], str]


def find_kind(kind: str, api_version: str | None) -> KindInfo:
    """The served kind named on an upstream topic (its group from the message, if it says)."""
    for info in KINDS:
        if info.kind == kind and (api_version is None or info.api_version == api_version):
            return info
    raise MalformedMessage(f"no served kind {kind!r} in {api_version!r}")


class UpstreamRecorder:
    """Turns upstream envelopes into records and queued status writes."""

    def __init__(
        self,
        records: Records,
        key_of: KeyOf,
        enqueue: Callable[[str], None],
        metrics: GMMetrics,
        sent: Lookup,
    ) -> None:
        self._records = records
        self._key_of = key_of
        self._enqueue = enqueue
        self._metrics = metrics
        self._sent = sent  # what the GM placed on each node: the ground of node authorization

    def apply(self, topic: UpTopic, envelope: Envelope) -> None:
        """Record one upstream message; raises only when it must be re-sent (Redis gone)."""
        try:
            message = parse_upstream(envelope.payload)
            api_version = message.owner_api_version if isinstance(message, WorkerMessage) else None
            info = find_kind(topic.kind, api_version)
        except (ValidationError, MalformedMessage) as exc:
            self._metrics.malformed.labels(source="payload").inc()
            log.error(
                "dropping an upstream message with a bad payload: %s",
                exc,
                extra={"node": envelope.node, "kind": topic.kind, "job": topic.name},
            )
            return
        reason = refusal(topic, message, self._sent)
        if reason is not None:
            self._metrics.refused.labels(node=topic.node, reason=reason).inc()
            log.warning(
                "refused an upstream message: %s",
                reason,
                extra={"node": topic.node, "kind": topic.kind, "job": topic.name},
            )
            return
        self._metrics.upstream.labels(kind=topic.kind).inc()
        if isinstance(message, WorkerMessage):
            # The node is the one the broker authorised, whatever the payload says.
            message = message.model_copy(update={"node": topic.node})
        key = self._key_of(info, topic.namespace, topic.name)
        if self._records.record(key, envelope, message):
            self._enqueue(key)
