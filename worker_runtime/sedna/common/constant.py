"""Upstream Sedna's constants: resource kinds and worker statuses as reports spell them."""

from __future__ import annotations

from enum import Enum


class K8sResourceKind(Enum):
    """The ``ownerKind`` of a worker report."""

    DEFAULT = "default"
    JOINT_INFERENCE_SERVICE = "jointinferenceservice"
    FEDERATED_LEARNING_JOB = "federatedlearningjob"
    INCREMENTAL_JOB = "incrementallearningjob"
    LIFELONG_JOB = "lifelonglearningjob"


class K8sResourceKindStatus(Enum):
    """The ``status`` of a worker report."""

    COMPLETED = "completed"
    FAILED = "failed"
    RUNNING = "running"


class KBResourceConstant(Enum):
    """Names lifelong learning uses for its knowledge base files."""

    MIN_TRAIN_SAMPLE = 10
    KB_INDEX_NAME = "index.pkl"
    TASK_EXTRACTOR_NAME = "task_attr_extractor.pkl"
    SEEN_TASK = "seen_task"
    UNSEEN_TASK = "unseen_task"
    TASK_GROUPS = "task_groups"
    EXTRACTOR = "extractor"
    EDGE_KB_DIR = "/var/lib/sedna/kb"
