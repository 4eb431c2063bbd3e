"""One policy per kind, keyed by canonical kind: the only place in the GM that names kinds.

Adding a job kind is one module here and one line in :data:`POLICIES` (see
``docs/adding-a-job-kind.md``). Legacy kinds (``neptune.io`` JointInferenceService,
``edgeai.io`` FederatedLearningTask) are served by their canonical kind's policy; their objects
are converted by ``apis.to_canonical`` before a policy sees them.
"""

from __future__ import annotations

from apis import KINDS, KindInfo
from gm.kinds.base import (
    InputPolicy,
    JobPolicy,
    JobSeries,
    KindPolicy,
    Message,
    Sample,
    Status,
    WatchedPolicy,
)
from gm.kinds.federated_learning import FederatedLearningPolicy
from gm.kinds.incremental_learning import IncrementalLearningPolicy
from gm.kinds.inputs import DatasetPolicy, ModelPolicy
from gm.kinds.joint_inference import JointInferencePolicy
from gm.kinds.lifelong_learning import LifelongLearningPolicy

__all__ = [
    "POLICIES",
    "InputPolicy",
    "JobPolicy",
    "JobSeries",
    "KindPolicy",
    "Message",
    "Sample",
    "Status",
    "WatchedPolicy",
    "job_policies",
    "policy_for",
    "policy_for_kind",
]

#: Canonical kind -> its policy. A served kind without one gets :data:`WATCHED` (validated only).
POLICIES: dict[str, KindPolicy] = {
    policy.kind: policy
    for policy in (
        ModelPolicy(),
        DatasetPolicy(),
        JointInferencePolicy(),
        FederatedLearningPolicy(),
        IncrementalLearningPolicy(),
        LifelongLearningPolicy(),
    )
}


WATCHED = WatchedPolicy()


def policy_for(info: KindInfo) -> KindPolicy:
    """The policy of a served kind (legacy kinds: their canonical kind's; else :data:`WATCHED`)."""
    return POLICIES.get(info.canonical_kind, WATCHED)


def policy_for_kind(kind: str) -> KindPolicy | None:
    """The policy of a kind given by name only (``FederatedLearningTask`` included)."""
    for info in KINDS:
        if info.kind == kind:
            return policy_for(info)
    return None


def job_policies() -> list[JobPolicy]:
    """Every job kind's policy."""
    return [p for p in POLICIES.values() if isinstance(p, JobPolicy)]
