"""Legacy groups of the design documents and their one conversion to the canonical kinds.

``neptune.io/v1alpha1 JointInferenceService`` and ``edgeai.io/v1alpha1 FederatedLearningTask``
describe each worker with a ``workerSpec`` (a script in a directory plus parameters) instead of
a pod template. They are stored and served as written; the GM reads them through
:func:`to_canonical`, which turns each ``workerSpec`` into a template running
``python <scriptBootFile>`` in ``<scriptDir>`` with every parameter as an environment variable.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from apis.base import ApiModel, Container, EnvVar, KeyValue, ObjectRef, PodSpec, PodTemplateSpec
from apis.kinds import (
    AggregationWorker,
    CloudWorker,
    EdgeWorker,
    FederatedLearningJob,
    FederatedLearningJobSpec,
    FederatedLearningJobStatus,
    HardExampleMining,
    JointInferenceService,
    JointInferenceServiceSpec,
    JointInferenceServiceStatus,
    SednaResource,
    TrainingWorker,
)

NEPTUNE_GROUP = "neptune.io"
EDGEAI_GROUP = "edgeai.io"
VERSION = "v1alpha1"

#: Annotation on a converted object naming the legacy apiVersion/kind it came from.
SOURCE_ANNOTATION = "sedna.io/converted-from"


class WorkerSpec(ApiModel):
    """A legacy worker: a boot script in a code directory, framework and parameters."""

    script_dir: str
    script_boot_file: str
    framework_type: str
    framework_version: str
    parameters: list[KeyValue] | None = None


class TrainingWorkerSpec(WorkerSpec):
    """A legacy training worker spec; the sample puts the dataset reference here."""

    dataset: ObjectRef | None = None


class LegacyAlgorithm(ApiModel):
    """A legacy hard example algorithm reference."""

    name: str


class LegacyEdgeWorker(ApiModel):
    """Legacy joint inference edge worker."""

    name: str
    model: ObjectRef
    node_name: str
    hard_example_algorithm: LegacyAlgorithm
    worker_spec: WorkerSpec


class LegacyCloudWorker(ApiModel):
    """Legacy joint inference cloud worker."""

    name: str
    model: ObjectRef
    node_name: str
    worker_spec: WorkerSpec


class LegacyJointInferenceServiceSpec(ApiModel):
    """Legacy joint inference spec (seed 001)."""

    edge_worker: LegacyEdgeWorker
    cloud_worker: LegacyCloudWorker


class LegacyJointInferenceService(SednaResource):
    """``neptune.io/v1alpha1 JointInferenceService`` as in the joint inference design."""

    GROUP: ClassVar[str] = NEPTUNE_GROUP
    KIND: ClassVar[str] = "JointInferenceService"
    CANONICAL_KIND: ClassVar[str] = JointInferenceService.KIND
    spec: LegacyJointInferenceServiceSpec
    status: JointInferenceServiceStatus | None = None


class LegacyAggregationWorker(ApiModel):
    """Legacy federated aggregation worker."""

    name: str
    model: ObjectRef
    node_name: str
    worker_spec: WorkerSpec


class LegacyTrainingWorker(ApiModel):
    """Legacy federated training worker; the dataset may sit here or in ``workerSpec``."""

    name: str
    node_name: str
    dataset: ObjectRef | None = None
    worker_spec: TrainingWorkerSpec


class FederatedLearningTaskSpec(ApiModel):
    """Legacy federated learning spec (seed 002)."""

    aggregation_worker: LegacyAggregationWorker
    training_workers: list[LegacyTrainingWorker] = Field(min_length=1)


class FederatedLearningTask(SednaResource):
    """``edgeai.io/v1alpha1 FederatedLearningTask`` as in the federated learning design."""

    GROUP: ClassVar[str] = EDGEAI_GROUP
    KIND: ClassVar[str] = "FederatedLearningTask"
    CANONICAL_KIND: ClassVar[str] = FederatedLearningJob.KIND
    spec: FederatedLearningTaskSpec
    status: FederatedLearningJobStatus | None = None


class LegacyConversionError(ValueError):
    """A legacy object that cannot be expressed in the canonical form."""


def worker_spec_to_template(name: str, node_name: str, spec: WorkerSpec) -> PodTemplateSpec:
    """A pod template running ``python <scriptBootFile>`` in ``<scriptDir>`` on ``node_name``.

    Each parameter becomes an environment variable with the parameter's key as its name, so
    ``Context.get_parameters(key)`` finds it in the worker.
    """
    env = [EnvVar(name=p.key, value=p.value) for p in spec.parameters or []]
    container = Container(
        name=name,
        image=f"{spec.framework_type}:{spec.framework_version}",
        args=[spec.script_boot_file],
        working_dir=spec.script_dir,
        env=env,
    )
    return PodTemplateSpec(spec=PodSpec(node_name=node_name, containers=[container]))


def _converted_metadata(obj: SednaResource) -> dict:
    meta = obj.metadata.model_copy(deep=True)
    meta.annotations = {**meta.annotations, SOURCE_ANNOTATION: f"{obj.api_version}/{obj.kind}"}
    return meta.model_dump(by_alias=True)


def _joint_inference(obj: LegacyJointInferenceService) -> JointInferenceService:
    edge, cloud = obj.spec.edge_worker, obj.spec.cloud_worker
    spec = JointInferenceServiceSpec(
        edge_worker=EdgeWorker(
            model=edge.model,
            hard_example_mining=HardExampleMining(name=edge.hard_example_algorithm.name),
            template=worker_spec_to_template(edge.name, edge.node_name, edge.worker_spec),
        ),
        cloud_worker=CloudWorker(
            model=cloud.model,
            template=worker_spec_to_template(cloud.name, cloud.node_name, cloud.worker_spec),
        ),
    )
    return JointInferenceService(
        api_version=f"{JointInferenceService.GROUP}/{VERSION}",
        kind=JointInferenceService.KIND,
        metadata=_converted_metadata(obj),
        spec=spec,
        status=obj.status,
    )


def _federated(obj: FederatedLearningTask) -> FederatedLearningJob:
    agg = obj.spec.aggregation_worker
    trainers = []
    for worker in obj.spec.training_workers:
        dataset = worker.dataset or worker.worker_spec.dataset
        if dataset is None:
            raise LegacyConversionError(
                f"spec.trainingWorkers[{worker.name}]: dataset: Required value"
            )
        template = worker_spec_to_template(worker.name, worker.node_name, worker.worker_spec)
        trainers.append(TrainingWorker(dataset=dataset, template=template))
    spec = FederatedLearningJobSpec(
        aggregation_worker=AggregationWorker(
            model=agg.model,
            template=worker_spec_to_template(agg.name, agg.node_name, agg.worker_spec),
        ),
        training_workers=trainers,
    )
    return FederatedLearningJob(
        api_version=f"{FederatedLearningJob.GROUP}/{VERSION}",
        kind=FederatedLearningJob.KIND,
        metadata=_converted_metadata(obj),
        spec=spec,
        status=obj.status,
    )


def to_canonical(obj: SednaResource) -> SednaResource:
    """The canonical form of ``obj``: legacy kinds are converted, canonical ones returned as is."""
    if isinstance(obj, LegacyJointInferenceService):
        return _joint_inference(obj)
    if isinstance(obj, FederatedLearningTask):
        return _federated(obj)
    return obj
