"""The API contract: pydantic models of every resource kind, CRD generation, legacy conversion.

A ground-floor package: it imports nothing else of the project.
"""

from apis.base import Condition, KeyValue, ObjectMeta, PodTemplateSpec, Resource
from apis.crds import crd_file_name, crd_manifests, crd_yaml
from apis.kinds import (
    Dataset,
    FederatedLearningJob,
    IncrementalLearningJob,
    JointInferenceService,
    LifelongLearningJob,
    Model,
)
from apis.legacy import FederatedLearningTask, LegacyJointInferenceService, to_canonical
from apis.registry import KINDS, KindInfo, UnknownKind, kind_info, parse_resource

__all__ = [
    "KINDS",
    "Condition",
    "Dataset",
    "FederatedLearningJob",
    "FederatedLearningTask",
    "IncrementalLearningJob",
    "JointInferenceService",
    "KeyValue",
    "KindInfo",
    "LegacyJointInferenceService",
    "LifelongLearningJob",
    "Model",
    "ObjectMeta",
    "PodTemplateSpec",
    "Resource",
    "UnknownKind",
    "crd_file_name",
    "crd_manifests",
    "crd_yaml",
    "kind_info",
    "parse_resource",
    "to_canonical",
]
