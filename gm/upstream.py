"""The GM's end of upstream messages: decode, check, coalesce per object, record in batches.

``broker.upstream.UpstreamReceiver`` calls :meth:`UpstreamRecorder.apply` with each batch of
messages whose ids it has not seen applied. ``apply`` decodes every payload into the typed union
(``apis.messages.parse_upstream``) and checks it against node authorization
(``gm.noderestriction``: a message about what the GM did not place on the sending node is
refused), then merges the good ones into their records (``gm.records``), coalesced: per object
and subject one record write for the whole batch, the latest value of each key winning. It
returns the records' writes, which the receiver commits in one Redis transaction with the ids'
"applied" marks; once committed, the records are kept in memory and each changed object's key
is queued once, so a batch with many workers' phase changes of one job is one status write.

A refused message, like a payload that can never be applied, is counted, logged and dropped
(marked applied and acknowledged, so it is not re-sent for ever); it never holds up the rest of
its batch.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import ValidationError

from apis import KINDS, KindInfo, WorkerMessage, parse_upstream
from broker import Envelope, MalformedMessage, UpTopic
from broker.upstream import Upstream
from gm.metrics import GMMetrics
from gm.noderestriction import Lookup, refusal
from gm.records import Message, Records, StagedRecords

log = logging.getLogger(__name__)

#: The work-queue key of an object: ``<plural>.<group>/<namespace>/<name>``.
KeyOf = Callable[[KindInfo, str, str], str]


def find_kind(kind: str, api_version: str | None) -> KindInfo:
    """The served kind named on an upstream topic (its group from the message, if it says)."""
    for info in KINDS:
        if info.kind == kind and (api_version is None or info.api_version == api_version):
            return info
    raise MalformedMessage(f"no served kind {kind!r} in {api_version!r}")


class RecordedBatch:
    """A batch merged into records: its writes for the commit, then memory and the work queue."""

    def __init__(self, staged: StagedRecords, enqueue: Callable[[str], None]) -> None:
        self.staged = staged
        self._enqueue = enqueue

    def write(self, pipe: Any) -> None:
        """Queue the records' writes on the receiver's transaction."""
        self.staged.write(pipe)

    def done(self) -> None:
        """Keep the committed records and queue each changed object's key once."""
        self.staged.done()
        for key in self.staged.keys:
            self._enqueue(key)


class UpstreamRecorder:
    """Turns batches of upstream envelopes into coalesced records and queued status writes."""

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

    def apply(self, batch: Sequence[Upstream]) -> RecordedBatch:
        """Decode, check and merge a batch (nothing is durable until the receiver commits)."""
        staged = self._records.stage()
        verdicts: dict[tuple[UpTopic, str], str | None] = {}  # node authorization, per batch
        counted: Counter[str] = Counter()  # good messages per kind, every one of them
        for item in batch:
            checked = self._check(item.topic, item.envelope, verdicts)
            if checked is not None:
                key, message = checked
                counted[item.topic.kind] += 1
                staged.add(key, item.envelope, message)
        for kind, n in counted.items():
            self._metrics.upstream.labels(kind=kind).inc(n)
        for error in staged.seal():
            self._metrics.malformed.labels(source="payload").inc()
            log.error("dropping a record that does not decode: %s", error)
        return RecordedBatch(staged, self._enqueue)

    def _check(
        self,
        topic: UpTopic,
        envelope: Envelope,
        verdicts: dict[tuple[UpTopic, str], str | None],
    ) -> tuple[str, Message] | None:
        """The object key and typed message of a message that may be applied, else None
        (counted and logged). ``verdicts`` holds the batch's authorization answers by topic and
        subject (what the GM placed does not change within a batch)."""
        try:
            message = parse_upstream(envelope.payload)
            api_version = message.owner_api_version if isinstance(message, WorkerMessage) else None
            info = find_kind(topic.kind, api_version)
        except (ValidationError, MalformedMessage) as exc:
            self._metrics.malformed.labels(source="payload").inc()
            log.error(
                "dropping an upstream message with a bad payload: %s",
                exc,
                extra={
                    "node": envelope.node,
                    "kind": topic.kind,
                    "namespace": topic.namespace,
                    "job": topic.name,
                },
            )
            return None
        asked = (topic, message.subject)
        if asked in verdicts:
            reason = verdicts[asked]
        else:
            reason = verdicts[asked] = refusal(topic, message, self._sent)
        if reason is not None:
            self._metrics.refused.labels(node=topic.node, reason=reason).inc()
            log.warning(
                "refused an upstream message: %s",
                reason,
                extra={
                    "node": topic.node,
                    "kind": topic.kind,
                    "namespace": topic.namespace,
                    "job": topic.name,
                },
            )
            return None
        if isinstance(message, WorkerMessage) and message.node != topic.node:
            # The node is the one the broker authorised, whatever the payload says.
            message = message.model_copy(update={"node": topic.node})
        return self._key_of(info, topic.namespace, topic.name), message
