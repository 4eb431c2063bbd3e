"""The interface between the GM's machinery and one kind: a policy object per kind.

The reconcile loop, the upstream recorder and the status writer know no kind names; for each
object they ask its kind's policy (``gm.kinds.policy_for``):

- a :class:`JobPolicy` (jobs and services) plans the workers, folds worker messages into the
  status, derives phase and conditions, and describes the kind's Prometheus series;
- an :class:`InputPolicy` (Model, Dataset: what jobs are planned from) says which nodes hold the
  object and folds the LC's messages about it into its status.

Policies are stateless: whatever a kind must remember between reconciles (a staged job's stage
and round) it keeps in the status it returns, which is the only state that survives a GM restart.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from apis import DatasetMessage, OwnerReference, Resource, WorkerMessage, WorkerOutput, WorkerStatus
from apis.stages import StageMessage
from gm import status as rules
from gm.plan import DesiredWorker, PlanContext
from gm.reports import merge_metrics, upsert_worker

Status = dict[str, Any]
Message = WorkerMessage | DatasetMessage | StageMessage


@dataclass(frozen=True)
class JobSeries:
    """A Prometheus gauge a kind adds; its labels are ``namespace``, ``name`` and ``labels``."""

    name: str
    help: str
    labels: tuple[str, ...] = ()


#: One sample of a :class:`JobSeries`: series name, values of its extra labels, value.
Sample = tuple[str, tuple[str, ...], float]


class KindPolicy(ABC):
    """What the GM does with objects of one canonical kind."""

    #: The canonical kind (``apis`` model ``KIND``); legacy kinds share their target's policy.
    kind: ClassVar[str]

    def fold(self, status: Status, message: Message, role: str | None, stamp: str) -> Status:
        """The status after one recorded upstream message about this object (idempotent)."""
        return status


class InputPolicy(KindPolicy):
    """A kind that jobs are planned from (its URL, its node), not one that runs workers."""

    #: The ``PlanContext`` field that maps this kind's object names to their ``spec.url``.
    plan_field: ClassVar[str | None] = None
    #: The ``PlanContext`` field that maps this kind's object names to the node holding them.
    node_field: ClassVar[str | None] = None

    def nodes(self, obj: dict[str, Any]) -> list[str]:
        """The nodes whose LC must hold ``obj`` (published on their ``down`` topics)."""
        return []


class JobPolicy(KindPolicy):
    """A job or service kind: which workers it needs and how their state becomes its status."""

    #: Whether the kind's status has a ``phase`` (set to ``Pending`` while it cannot start).
    has_phase: ClassVar[bool] = False

    def finished(self, status: Status) -> bool:
        """Whether the job is over: its workers are stopped and nothing is published for it."""
        return False

    def ports(self, job: Resource) -> tuple[str, ...]:
        """The roles whose workers listen on a port the GM allocates (``ctx.ports[role]``)."""
        return ()

    def bind(self, job: Resource, ctx: PlanContext) -> JobPolicy:
        """The policy that folds and derives ``job``'s status (a kind whose status rules need
        the job's spec returns one bound to it; most kinds need none: ``self``)."""
        return self

    def downstream(
        self,
        job: Resource,
        ctx: PlanContext,
        canonical: dict[str, Any],
        workers: Sequence[DesiredWorker],
        status: Status,
    ) -> list[tuple[str, dict[str, Any]]]:
        """``(node, object)`` for every node that must hold the job: by default the canonical
        object for each node running one of its workers."""
        return [(node, canonical) for node in sorted({w.node for w in workers})]

    def input_statuses(self, job: Resource, status: Status) -> list[tuple[str, str, Status]]:
        """Status fields the job's status sets on objects it uses, as ``(kind, name, fields)``
        in the job's namespace (a federated job's Model: its latest version)."""
        return []

    @abstractmethod
    def plan(
        self, job: Resource, owner: OwnerReference, ctx: PlanContext, status: Status
    ) -> list[DesiredWorker]:
        """The workers ``job`` (canonical form) needs now, given the status it last had.

        A staged kind plans from what it keeps in ``status`` (its current stage and round).
        Raises ``gm.plan.PlanError`` while something it needs is missing.
        """

    @abstractmethod
    def derive(
        self, status: Status, workers: Sequence[WorkerStatus], expected: int, stamp: str
    ) -> Status:
        """Phase, conditions and counts from the planned workers' observed state.

        ``status`` already has every recorded message folded in; ``workers`` are the observed
        entries of the ``expected`` planned workers. May add kind-specific fields.
        """

    def fold(self, status: Status, message: Message, role: str | None, stamp: str) -> Status:
        """Upsert the worker's entry, land its models' metrics, then the kind's progress."""
        if not isinstance(message, WorkerMessage):
            return status
        status = dict(status)
        entry = upsert_worker(status, message, stamp)
        if role:
            entry["role"] = role
        output = message.output
        if output is not None:
            for model in output.models or []:
                merge_metrics(status, model.metrics or {})
            self.fold_progress(status, role, output)
        return status

    def fold_progress(self, status: Status, role: str | None, output: WorkerOutput) -> None:
        """Change ``status`` in place from a worker's output (``output.progress()`` holds its
        ``taskInfo`` and ``ownerInfo`` alike)."""

    def pending(self, status: Status, reason: str, message: str, stamp: str) -> Status:
        """The status of a job that cannot start: invalid spec, missing dependency."""
        status = rules.with_pending(status, reason, message, stamp)
        if self.has_phase or "phase" in status:
            status["phase"] = "Pending"
        return status

    def series(self) -> tuple[JobSeries, ...]:
        """The kind's own Prometheus series (beyond phase and worker counts)."""
        return ()

    def samples(self, status: Status) -> Iterable[Sample]:
        """The samples of :meth:`series` for one job's status."""
        return ()


class WatchedPolicy(JobPolicy):
    """A served job kind whose own policy is not there yet: its objects are validated (an
    invalid spec gets its ``Pending`` condition), nothing is run and nothing else is written."""

    kind: ClassVar[str] = ""

    def plan(
        self, job: Resource, owner: OwnerReference, ctx: PlanContext, status: Status
    ) -> list[DesiredWorker]:
        """No workers."""
        return []

    def derive(
        self, status: Status, workers: Sequence[WorkerStatus], expected: int, stamp: str
    ) -> Status:
        """The status as it is."""
        return status
