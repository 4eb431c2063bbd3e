"""Every kind the control plane serves: names, short names, printer columns, models."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from apis.base import Resource
from apis.kinds import (
    Dataset,
    FederatedLearningJob,
    IncrementalLearningJob,
    JointInferenceService,
    LifelongLearningJob,
    Model,
)
from apis.legacy import FederatedLearningTask, LegacyJointInferenceService


class PrinterColumn(BaseModel):
    """A CRD ``additionalPrinterColumns`` entry."""

    model_config = ConfigDict(frozen=True)

    name: str
    type: str
    json_path: str
    description: str = ""
    priority: int = 0


class KindInfo(BaseModel):
    """How one kind is named and shown by the API."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    model: type[Resource]
    plural: str
    singular: str
    short_names: tuple[str, ...] = ()
    printer_columns: tuple[PrinterColumn, ...] = ()
    legacy: bool = False

    @property
    def kind(self) -> str:
        """The kind name, e.g. ``Dataset``."""
        return self.model.KIND

    @property
    def canonical_kind(self) -> str:
        """The canonical kind this kind is read as (a legacy kind's conversion target)."""
        return self.model.CANONICAL_KIND or self.model.KIND

    @property
    def group(self) -> str:
        """The API group, e.g. ``sedna.io``."""
        return self.model.GROUP

    @property
    def version(self) -> str:
        """The API version, e.g. ``v1alpha1``."""
        return self.model.VERSION

    @property
    def api_version(self) -> str:
        """``group/version``."""
        return f"{self.group}/{self.version}"


AGE = PrinterColumn(name="Age", type="date", json_path=".metadata.creationTimestamp")
_JI_COLUMNS = (
    PrinterColumn(
        name="status",
        type="string",
        json_path=".status.conditions[-1].type",
        description="The status of the jointinference service",
    ),
    PrinterColumn(
        name="active",
        type="integer",
        json_path=".status.active",
        description="The number of active worker",
    ),
    PrinterColumn(
        name="failed",
        type="integer",
        json_path=".status.failed",
        description="The number of failed worker",
    ),
    AGE,
)
_FL_COLUMNS = (
    PrinterColumn(
        name="status",
        type="string",
        json_path=".status.phase",
        description="The status of the federated learning task",
    ),
    PrinterColumn(
        name="Round",
        type="integer",
        json_path=".status.currentRound",
        description="The current training round",
    ),
    PrinterColumn(
        name="Active",
        type="integer",
        json_path=".status.active",
        description="The number of running workers",
        priority=1,
    ),
    AGE,
)
_STAGE_COLUMNS = (
    PrinterColumn(
        name="Stage",
        type="string",
        json_path=".status.stage",
        description="The current stage: Train, Eval or Deploy",
    ),
    PrinterColumn(
        name="State",
        type="string",
        json_path=".status.state",
        description="The state of the current stage",
    ),
    PrinterColumn(
        name="Round",
        type="integer",
        json_path=".status.round",
        description="The current round (0 before the first)",
    ),
    AGE,
)
_LIFELONG_COLUMNS = (
    *_STAGE_COLUMNS[:3],
    PrinterColumn(
        name="Tasks",
        type="integer",
        json_path=".status.knowledgeBase.AIModels.numberOfAIModels",
        description="Task models in the job's knowledge base",
    ),
    AGE,
)

#: Canonical kinds first. Names mean the same on every server: kubectl resolves a bare plural,
#: singular or short name to the first group in discovery order, and a real kube-apiserver lists
#: CRD groups alphabetically (``edgeai.io`` < ``neptune.io`` < ``sedna.io``), so no name of a
#: legacy kind may equal a name of a canonical one. Legacy kinds have no short names, and the
#: ``neptune.io`` plural and singular carry the group's name. No short name equals a built-in one
#: (``ds`` is DaemonSets; upstream Sedna gives Dataset none). ``tests/test_apis.py`` checks this.
KINDS: tuple[KindInfo, ...] = (
    KindInfo(
        model=Dataset,
        plural="datasets",
        singular="dataset",
        printer_columns=(
            PrinterColumn(name="NodeName", type="string", json_path=".spec.nodeName"),
            PrinterColumn(name="Format", type="string", json_path=".spec.format"),
            PrinterColumn(
                name="Samples",
                type="integer",
                json_path=".status.numberOfSamples",
                description="Number of samples counted on the node",
            ),
            AGE,
        ),
    ),
    KindInfo(
        model=Model,
        plural="models",
        singular="model",
        printer_columns=(
            PrinterColumn(name="Format", type="string", json_path=".spec.format"),
            PrinterColumn(name="URL", type="string", json_path=".spec.url", priority=1),
            AGE,
        ),
    ),
    KindInfo(
        model=JointInferenceService,
        plural="jointinferenceservices",
        singular="jointinferenceservice",
        short_names=("ji", "jis"),
        printer_columns=_JI_COLUMNS,
    ),
    KindInfo(
        model=FederatedLearningJob,
        plural="federatedlearningjobs",
        singular="federatedlearningjob",
        short_names=("fl",),
        printer_columns=_FL_COLUMNS,
    ),
    KindInfo(
        model=IncrementalLearningJob,
        plural="incrementallearningjobs",
        singular="incrementallearningjob",
        short_names=("il",),
        printer_columns=_STAGE_COLUMNS,
    ),
    KindInfo(
        model=LifelongLearningJob,
        plural="lifelonglearningjobs",
        singular="lifelonglearningjob",
        short_names=("ll",),
        printer_columns=_LIFELONG_COLUMNS,
    ),
    KindInfo(
        model=LegacyJointInferenceService,
        plural="neptunejointinferenceservices",
        singular="neptunejointinferenceservice",
        printer_columns=_JI_COLUMNS,
        legacy=True,
    ),
    KindInfo(
        model=FederatedLearningTask,
        plural="federatedlearningtasks",
        singular="federatedlearningtask",
        printer_columns=_FL_COLUMNS,
        legacy=True,
    ),
)


class UnknownKind(LookupError):
    """An apiVersion/kind this control plane does not serve."""


def kind_info(api_version: str, kind: str) -> KindInfo:
    """The served kind for ``apiVersion`` and ``kind``."""
    for info in KINDS:
        if info.api_version == api_version and info.kind == kind:
            return info
    raise UnknownKind(f'no kind "{kind}" is served in version "{api_version}"')


def parse_resource(obj: dict) -> Resource:
    """Parse an API object (a dict) into its typed model, by ``apiVersion`` and ``kind``."""
    info = kind_info(obj.get("apiVersion", ""), obj.get("kind", ""))
    return info.model.model_validate(obj)
