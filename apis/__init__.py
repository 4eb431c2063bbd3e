"""The contract: pydantic models of every resource kind, of what travels between workers, LCs
and the GM, and of component settings; CRD generation and the one legacy conversion.

A ground-floor package: it imports nothing else of the project. Other packages use the names
below.
"""

from apis.base import OwnerReference, PodTemplateSpec, Resource
from apis.crds import crd_file_name, crd_manifests, crd_yaml
from apis.kinds import (
    Dataset,
    FederatedLearningJob,
    HardExampleMining,
    IncrementalLearningJob,
    JointInferenceService,
    LifelongLearningJob,
    Model,
    WorkerStatus,
)
from apis.legacy import (
    FederatedLearningTask,
    LegacyConversionError,
    LegacyJointInferenceService,
    to_canonical,
)
from apis.messages import (
    DNS1123_SUBDOMAIN,
    WORKER_TOKEN_ENV,
    WORKER_TOKEN_HEADER,
    DatasetMessage,
    NodeSnapshot,
    ReportingWorker,
    SnapshotItem,
    UpstreamMessage,
    WorkerMessage,
    WorkerOutput,
    WorkerPod,
    WorkerReport,
    node_log_token,
    parse_upstream,
    token_digest,
)
from apis.registry import KINDS, KindInfo, UnknownKind, kind_info, parse_resource
from apis.settings import ComponentSettings, InvalidSettings, Source

__all__ = [
    "DNS1123_SUBDOMAIN",
    "KINDS",
    "WORKER_TOKEN_ENV",
    "WORKER_TOKEN_HEADER",
    "ComponentSettings",
    "Dataset",
    "DatasetMessage",
    "FederatedLearningJob",
    "FederatedLearningTask",
    "HardExampleMining",
    "IncrementalLearningJob",
    "InvalidSettings",
    "JointInferenceService",
    "KindInfo",
    "LegacyConversionError",
    "LegacyJointInferenceService",
    "LifelongLearningJob",
    "Model",
    "NodeSnapshot",
    "OwnerReference",
    "PodTemplateSpec",
    "ReportingWorker",
    "Resource",
    "SnapshotItem",
    "Source",
    "UnknownKind",
    "UpstreamMessage",
    "WorkerMessage",
    "WorkerOutput",
    "WorkerPod",
    "WorkerReport",
    "WorkerStatus",
    "crd_file_name",
    "crd_manifests",
    "crd_yaml",
    "kind_info",
    "node_log_token",
    "parse_resource",
    "parse_upstream",
    "to_canonical",
    "token_digest",
]
