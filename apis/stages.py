"""The vocabulary of staged jobs (incremental and lifelong learning): stages, states, rounds.

A staged job walks Train -> Eval -> Deploy -> Train ... for ever; each stage passes through
the six states Waiting, Ready, Starting, Running, Completed, Failed. Every state change is
appended to ``status.conditions`` as a :class:`StagedCondition` (an audit trail that may be
capped); the current round, stage and state and what the next round needs (the trained and
the deployed model, the last evaluation and deploy decision) are kept explicitly in
:class:`StagedJobStatus`, never read back from the history.

``data`` of a condition is a JSON string, as in upstream Sedna:
``{"input": {"models", "dataURL", "dataIndexURL", "outputDir"}, "output": {"models"}}``.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any, Literal

from pydantic import Field, ValidationError

from apis.base import ApiModel, Condition


class Stage(StrEnum):
    """The three stages of a round."""

    TRAIN = "Train"
    EVAL = "Eval"
    DEPLOY = "Deploy"

    def next(self) -> Stage:
        """The stage after this one (Deploy is followed by the next round's Train)."""
        order = list(Stage)
        return order[(order.index(self) + 1) % len(order)]


class StageState(StrEnum):
    """The six states of a stage."""

    WAITING = "Waiting"
    READY = "Ready"
    STARTING = "Starting"
    RUNNING = "Running"
    COMPLETED = "Completed"
    FAILED = "Failed"


class StageModel(ApiModel):
    """A model flowing between stages: where it is, its format, its metrics (eval output)."""

    format: str | None = None
    url: str
    metrics: dict[str, Any] | None = Field(
        default=None, description="Numbers, lists of numbers (per class) or strings."
    )


class StageInput(ApiModel):
    """What a stage starts from: models, the round's data file and where outputs go."""

    models: list[StageModel] | None = None
    data_url: str | None = Field(default=None, alias="dataURL")
    data_index_url: str | None = Field(default=None, alias="dataIndexURL")
    output_dir: str | None = None


class StageOutput(ApiModel):
    """What a stage produced (the workers' reported models)."""

    models: list[StageModel] | None = None


class StageData(ApiModel):
    """The ``data`` of a staged condition."""

    input: StageInput | None = None
    output: StageOutput | None = None

    def to_json(self) -> str:
        """The compact JSON string stored in a condition's ``data``."""
        return json.dumps(self.to_api(), separators=(",", ":"), sort_keys=True)


class StagedCondition(Condition):
    """One state change of a staged job: ``stage`` and its state in ``type``."""

    stage: Stage | None = None
    round: int | None = Field(default=None, ge=0)
    data: str | None = Field(default=None, description="JSON of {input, output} (StageData).")

    def stage_data(self) -> StageData | None:
        """``data`` parsed; None when absent or not valid JSON of the expected shape."""
        if not self.data:
            return None
        try:
            return StageData.model_validate(json.loads(self.data))
        except (ValueError, ValidationError):
            return None


class DeployDecision(ApiModel):
    """Whether the round's trained model is deployed, and why in words."""

    round: int = Field(ge=0)
    deploy: bool
    reason: str
    metrics: dict[str, Any] | None = Field(
        default=None, description="The metrics the deploy trigger saw (values and deltas)."
    )


class RoundData(ApiModel):
    """The current round's data files (written by the dataset node's LC) and their sizes."""

    train: int = Field(default=0, ge=0, description="Samples in the round's train file.")
    eval: int = Field(default=0, ge=0, description="Samples in the round's eval file.")
    train_url: str | None = Field(default=None, alias="trainURL")
    eval_url: str | None = Field(default=None, alias="evalURL")


class StageMessage(ApiModel):
    """An LC's report about a stage (upstream).

    The dataset node's LC cut round ``round``'s data: (``Train``, ``Ready``, ``data``). The deploy
    node's LC put the model in place: (``Deploy``, ``Running``), or could not: (``Deploy``,
    ``Failed``, ``message``). The inference worker loaded it (hot update, relayed by its LC):
    (``Deploy``, ``Completed``, ``models``: the model loaded), or failed to: (``Deploy``,
    ``Failed``, ``message``).
    """

    type: Literal["stage"] = "stage"
    stage: Stage
    state: StageState
    round: int = Field(ge=1)
    data: RoundData | None = None
    models: list[StageModel] | None = None
    message: str | None = None

    @property
    def subject(self) -> str:
        """One record per stage (``stage:Train``: the cut; ``stage:Deploy``: the placement, then
        the reload), so a stage's message never replaces another stage's before it is folded."""
        return f"stage:{self.stage.value}"


class StagedRound(ApiModel):
    """The explicit round state of a staged job's status (``kinds.StagedJobStatus`` adds it to
    the shared job status): round, stage, state and what the next round needs."""

    round: int = Field(default=0, ge=0, description="The current round; 0 before the first.")
    stage: Stage | None = None
    state: StageState | None = None
    message: str | None = Field(default=None, description="Why the job is in its state.")
    stage_data: StageData | None = Field(
        default=None, description="Input (and output) of the current stage."
    )
    round_data: RoundData | None = None
    trained_model: StageModel | None = Field(
        default=None, description="The newest trained model; the next round trains from it."
    )
    deployed_model: StageModel | None = Field(
        default=None, description="The model the inference worker serves, once one is deployed."
    )
    last_decision: DeployDecision | None = None
    deploys: int = Field(default=0, ge=0, description="Rounds whose model was deployed.")
    skipped_deploys: int = Field(default=0, ge=0, description="Rounds judged not worth it.")
    failed_rounds: int = Field(default=0, ge=0, description="Rounds abandoned by a failure.")


#: The annotation carrying a :class:`StagedDirective` on the job object sent to nodes.
STAGED_ANNOTATION = "sedna.io/staged"


class DeployAction(ApiModel):
    """Put round ``round``'s model in place on the deploy node.

    Cold update: copy ``modelURL`` over ``targetURL`` atomically (the GM then restarts the
    inference worker). Hot update: write the model config ``hotUpdateConfig`` naming
    ``modelURL``; the running inference worker loads it.
    """

    round: int = Field(ge=1)
    model_url: str = Field(alias="modelURL")
    target_url: str = Field(alias="targetURL")
    hot_update_config: str | None = None


class StagedDirective(ApiModel):
    """What the nodes of a staged job need to know of its round, sent with the job object (the
    GM does not send status downstream): the round, stage and state, the deploy to carry out,
    and the model now served (which the deploy node mirrors to the deploy Model's file)."""

    round: int = Field(ge=0)
    stage: Stage
    state: StageState
    deploy: DeployAction | None = None
    deploy_node: str | None = Field(default=None, description="The node that carries deploys out.")
    served_model_url: str | None = Field(default=None, alias="servedModelURL")
    target_url: str | None = Field(default=None, alias="targetURL")
