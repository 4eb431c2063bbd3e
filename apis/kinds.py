"""The canonical ``sedna.io/v1alpha1`` kinds, spec and status as the design documents name them."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal

from pydantic import Field

from apis.base import (
    ApiModel,
    Condition,
    KeyValue,
    ObjectRef,
    PodTemplateSpec,
    Resource,
)
from apis.stages import StagedCondition, StagedRound

GROUP = "sedna.io"
VERSION = "v1alpha1"


class SednaResource(Resource):
    """A resource of the canonical group."""

    GROUP: ClassVar[str] = GROUP
    VERSION: ClassVar[str] = VERSION


# --- Dataset and Model ---------------------------------------------------------------------------


class DatasetSpec(ApiModel):
    """Where a dataset's index file lives, its format and the node that holds it."""

    url: str = Field(description="Path of the dataset index file on the node.")
    format: str = Field(description="Index file format: txt (one sample a line) or csv.")
    node_name: str = Field(description="The node that holds the dataset.")
    credential_name: str | None = None


class DatasetStatus(ApiModel):
    """What the node's LocalController observed of the dataset."""

    number_of_samples: int = 0
    update_time: datetime | None = None


class Dataset(SednaResource):
    """A dataset on an edge node, monitored by that node's LocalController."""

    KIND: ClassVar[str] = "Dataset"
    spec: DatasetSpec
    status: DatasetStatus | None = None


class ModelSpec(ApiModel):
    """Where a model file lives and its format."""

    url: str = Field(description="Path or URL of the model.")
    format: str = Field(description="Model format, e.g. pb, ckpt, pkl, npz.")
    credential_name: str | None = None


class ModelStatus(ApiModel):
    """Metrics of the model as last reported."""

    update_time: datetime | None = None
    metrics: list[KeyValue] | None = None


class Model(SednaResource):
    """A model used or produced by a job."""

    KIND: ClassVar[str] = "Model"
    spec: ModelSpec
    status: ModelStatus | None = None


# --- Shared job structures -----------------------------------------------------------------------


class HardExampleMining(ApiModel):
    """A hard example mining algorithm by name, with string parameters."""

    name: str
    parameters: list[KeyValue] | None = None


class WorkerStatus(ApiModel):
    """What the control plane last observed of one worker of a resource."""

    name: str
    node_name: str | None = None
    role: str | None = None
    phase: str | None = Field(
        default=None, description="Pending, Running, Succeeded or Failed (the worker process)."
    )
    status: str | None = Field(default=None, description="The worker's own report, e.g. running.")
    restart_count: int | None = None
    exit_code: int | None = None
    last_update_time: datetime | None = None


class JobStatus(ApiModel):
    """Conditions and worker counts shared by the job kinds."""

    conditions: list[Condition] | None = None
    workers: list[WorkerStatus] | None = None
    start_time: datetime | None = None
    completion_time: datetime | None = None
    active: int | None = None
    succeeded: int | None = None
    failed: int | None = None
    metrics: list[KeyValue] | None = Field(
        default=None,
        description="What the workers reported: counters and model metrics (values as text).",
    )


# --- Joint inference ------------------------------------------------------------------------------


class EdgeWorker(ApiModel):
    """The edge side of a joint inference service: small model plus hard example mining."""

    model: ObjectRef
    hard_example_mining: HardExampleMining
    template: PodTemplateSpec


class CloudWorker(ApiModel):
    """The cloud side of a joint inference service: the big model."""

    model: ObjectRef
    template: PodTemplateSpec


class JointInferenceServiceSpec(ApiModel):
    """An edge worker that sends hard examples to a cloud worker."""

    edge_worker: EdgeWorker
    cloud_worker: CloudWorker


class JointInferenceServiceStatus(JobStatus):
    """Service conditions (Pending, Running, Failed), worker counts and inference metrics."""


class JointInferenceService(SednaResource):
    """Joint inference: easy samples stay on the edge, hard ones go to the cloud."""

    KIND: ClassVar[str] = "JointInferenceService"
    spec: JointInferenceServiceSpec
    status: JointInferenceServiceStatus | None = None


# --- Federated learning ---------------------------------------------------------------------------


class AggregationWorker(ApiModel):
    """The cloud worker that aggregates the training workers' updates."""

    model: ObjectRef
    template: PodTemplateSpec


class TrainingWorker(ApiModel):
    """An edge worker that trains on its node's dataset."""

    dataset: ObjectRef
    template: PodTemplateSpec


class FederatedLearningJobSpec(ApiModel):
    """One aggregation worker and the training workers it federates."""

    aggregation_worker: AggregationWorker
    training_workers: list[TrainingWorker] = Field(min_length=1)
    pretrained_model: ObjectRef | None = None


class FederatedNodeStatus(ApiModel):
    """One participating node's share of the training."""

    node_name: str
    worker: str | None = None
    number_of_samples: int | None = None
    last_round: int | None = None


class FederatedLearningJobStatus(JobStatus):
    """Phase (Pending, Running, Succeeded, Failed), rounds and the nodes taking part."""

    phase: str | None = None
    current_round: int | None = None
    aggregation_count: int | None = None
    nodes: list[FederatedNodeStatus] | None = None
    output_model: str | None = None


class FederatedLearningJob(SednaResource):
    """Federated learning: edges train on local data, the cloud aggregates the weights."""

    KIND: ClassVar[str] = "FederatedLearningJob"
    spec: FederatedLearningJobSpec
    status: FederatedLearningJobStatus | None = None


# --- Incremental and lifelong learning ---------------------------------------------------------


#: ``HH:MM`` from 00:00 to 23:59, or 24:00 (the end of the day).
TIME_OF_DAY_PATTERN = r"^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$"
#: Comparison operators of a trigger condition, with upstream Sedna's aliases.
TriggerOperator = Literal[">", "<", ">=", "<=", "=", "==", "!=", "gt", "lt", "ge", "le", "eq", "ne"]
#: A metric name, optionally indexing a list metric: ``precision_delta[0]``.
METRIC_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.-]*(\[[0-9]+\])?$"
#: How often a trigger is checked when ``checkPeriodSeconds`` is not given.
DEFAULT_CHECK_PERIOD_SECONDS = 60


class Timer(ApiModel):
    """A daily time window ``HH:MM``-``HH:MM`` in which a trigger may fire (may wrap midnight)."""

    start: str = Field(pattern=TIME_OF_DAY_PATTERN)
    end: str = Field(pattern=TIME_OF_DAY_PATTERN)


class TriggerCondition(ApiModel):
    """``metric operator threshold``, e.g. ``num_of_samples > 500``."""

    operator: TriggerOperator
    threshold: float
    metric: str = Field(pattern=METRIC_PATTERN)


class Trigger(ApiModel):
    """When a stage may start: how often to check, in which window, on which condition."""

    check_period_seconds: int = Field(default=DEFAULT_CHECK_PERIOD_SECONDS, ge=1)
    timer: Timer | None = None
    condition: TriggerCondition | None = None


class JobDataset(ApiModel):
    """The dataset a job trains on and the share of it used for training."""

    name: str
    train_prob: float = Field(ge=0, le=1)


class TrainSpec(ApiModel):
    """The training worker and what triggers it."""

    template: PodTemplateSpec
    trigger: Trigger | None = None


class EvalSpec(ApiModel):
    """The evaluation worker, and the model the trained one is compared with."""

    template: PodTemplateSpec
    initial_eval_model: ObjectRef | None = Field(
        default=None, description="Model to compare against; default: the deploy model."
    )


class DeployModel(ApiModel):
    """The model the inference worker serves and how it is updated."""

    name: str
    hot_update_enabled: bool | None = None
    poll_period_seconds: int = Field(default=60, ge=1)


class DeploySpec(ApiModel):
    """The inference worker, its model and the condition for deploying a new model."""

    model: DeployModel
    trigger: Trigger | None = None
    hard_example_mining: HardExampleMining | None = None
    template: PodTemplateSpec


class StagedJobStatus(JobStatus, StagedRound):
    """Status of a staged job (incremental or lifelong learning): the round state explicitly,
    the stage history as conditions."""

    conditions: list[StagedCondition] | None = None  # type: ignore[assignment]


class IncrementalLearningJobSpec(ApiModel):
    """Train, evaluate and deploy again as new samples arrive on the edge."""

    initial_model: ObjectRef
    dataset: JobDataset
    train_spec: TrainSpec
    eval_spec: EvalSpec
    deploy_spec: DeploySpec
    credential_name: str | None = None
    output_dir: str | None = None


class IncrementalLearningJob(SednaResource):
    """Incremental learning: train/eval/deploy stages driven by triggers."""

    KIND: ClassVar[str] = "IncrementalLearningJob"
    spec: IncrementalLearningJobSpec
    status: StagedJobStatus | None = None


class LifelongDeploySpec(ApiModel):
    """The inference worker of a lifelong learning job."""

    template: PodTemplateSpec


class LifelongLearningJobSpec(ApiModel):
    """Train, evaluate and deploy with a knowledge base shared across tasks."""

    dataset: JobDataset
    train_spec: TrainSpec
    eval_spec: EvalSpec
    deploy_spec: LifelongDeploySpec
    credential_name: str | None = None
    output_dir: str | None = None


class KBModel(ApiModel):
    """One task model the knowledge base holds."""

    model_id: str = Field(alias="modelID")
    average_precision: float = Field(default=0.0, alias="averagePrecision")
    number_of_train_samples: int = Field(default=0, ge=0, alias="numberOfTrainSamples")


class KBModels(ApiModel):
    """``status.knowledgeBase.AIModels``."""

    number_of_ai_models: int = Field(default=0, ge=0, alias="numberOfAIModels")
    list_of_ai_models: list[KBModel] = Field(default_factory=list, alias="listOfAIModels")


class KBClasses(ApiModel):
    """``status.knowledgeBase.AIClasses``."""

    number_of_ai_classes: int = Field(default=0, ge=0, alias="numberOfAIClasses")
    list_of_ai_classes: list[str] = Field(default_factory=list, alias="listOfAIClasses")


class KBSamples(ApiModel):
    """``status.knowledgeBase.samples``."""

    number_of_labeled_unseen_sample: int = Field(
        default=0, ge=0, alias="numberOfLabeledUnseenSample"
    )
    number_of_unseen_sample: int = Field(default=0, ge=0, alias="numberOfUnseenSample")


class KnowledgeBaseStatus(ApiModel):
    """What the job's knowledge base holds (seed 000's ``status.knowledgeBase``)."""

    ai_models: KBModels = Field(default_factory=KBModels, alias="AIModels")
    ai_classes: KBClasses = Field(default_factory=KBClasses, alias="AIClasses")
    samples: KBSamples = Field(default_factory=KBSamples)


class LifelongLearningJobStatus(StagedJobStatus):
    """Status of a lifelong learning job: the staged round plus its knowledge base."""

    knowledge_base: KnowledgeBaseStatus | None = Field(default=None, alias="knowledgeBase")


class LifelongLearningJob(SednaResource):
    """Lifelong learning: multi-task and incremental learning with a cloud knowledge base."""

    KIND: ClassVar[str] = "LifelongLearningJob"
    spec: LifelongLearningJobSpec
    status: LifelongLearningJobStatus | None = None
