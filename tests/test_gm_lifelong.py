"""The LifelongLearningJob policy on the staged engine: workers, environment, deploy decisions,
failed rounds and ``status.knowledgeBase`` (no I/O)."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

from apis import LifelongLearningJob, OwnerReference, WorkerMessage, WorkerOutput
from apis.kinds import StagedJobStatus
from apis.stages import RoundData, Stage, StageMessage, StageModel, StageState
from gm.kinds.lifelong_learning import LifelongLearningPolicy
from gm.plan import PlanContext
from gm.staged import WorkerResult, advance

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "lifelong_learning"
sys.path.insert(0, str(EXAMPLE))

from job import Workspace, manifests  # noqa: E402

S, W = Stage, StageState
NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
POLICY = LifelongLearningPolicy()
WORK = Workspace(Path("/srv/digits"))
JOB = LifelongLearningJob.model_validate(manifests(WORK)[1])
CTX = PlanContext(
    dataset_urls={"digits-ll-dataset": str(WORK.index)},
    dataset_nodes={"digits-ll-dataset": "edge0"},
    kb_server="http://127.0.0.1:9020",
)
OWNER = OwnerReference(
    api_version="sedna.io/v1alpha1", kind="LifelongLearningJob", name="digits-ll", uid="u1"
)
HOOKS = POLICY.engine(JOB, CTX)
OUT = "/srv/digits/output"


def cut(round_: int) -> StageMessage:
    return StageMessage(
        stage=S.TRAIN,
        state=W.READY,
        round=round_,
        data=RoundData(
            train=640,
            eval=160,
            train_url=f"{OUT}/data/train/{round_}/data.csv",
            eval_url=f"{OUT}/data/eval/{round_}/data.csv",
        ),
    )


def index(stage: str, round_: int, **metrics: float) -> StageModel:
    return StageModel(format="json", url=f"{OUT}/{stage}/{round_}/index.json", metrics=metrics)


def done(stage: Stage, round_: int, *models: StageModel) -> WorkerResult:
    return WorkerResult(stage=stage, round=round_, status="completed", models=list(models))


def run(status: StagedJobStatus, *events) -> StagedJobStatus:
    return advance(status, list(events), HOOKS, NOW)


def envs(status: StagedJobStatus) -> dict[str, dict[str, str]]:
    return {w.role: w.env for w in POLICY.stage_workers(JOB, OWNER, CTX, status)}


def test_round_one_trains_evaluates_and_deploys_the_eval_index() -> None:
    status = run(StagedJobStatus(), cut(1))
    assert (status.stage, status.state) == (S.TRAIN, W.STARTING)
    train = envs(status)["train"]
    assert train["TRAIN_DATASET_URL"] == f"{OUT}/data/train/1/data.csv"
    assert train["OUTPUT_URL"] == f"{OUT}/train/1"
    assert train["HAS_COMPLETED_INITIAL_TRAINING"] == "false"
    assert "CLOUD_KB_INDEX" not in train
    assert train["KB_SERVER"] == "http://127.0.0.1:9020"
    assert train["ORIGINAL_DATASET_URL"] == str(WORK.index)
    assert "inference" not in envs(status)  # no inference worker before the first deploy

    status = run(status, done(S.TRAIN, 1, index("train", 1)))
    assert (status.stage, status.state) == (S.EVAL, W.STARTING)
    evaluation = envs(status)["eval"]
    assert evaluation["MODEL_URLS"] == f"{OUT}/train/1/index.json"
    assert evaluation["TEST_DATASET_URL"] == f"{OUT}/data/eval/1/data.csv"
    assert evaluation["OUTPUT_URL"] == f"{OUT}/eval/1"

    status = run(status, done(S.EVAL, 1, index("eval", 1, deployable_tasks=2, evaluated_tasks=2)))
    assert (status.stage, status.state) == (S.DEPLOY, W.STARTING)
    assert status.last_decision.reason == "2 of 2 evaluated tasks pass the eval filter"
    action = POLICY.directive(JOB, CTX, status).deploy
    assert (action.model_url, action.target_url) == (
        f"{OUT}/eval/1/index.json",
        f"{OUT}/deploy/index.json",
    )
    status = run(status, StageMessage(stage=S.DEPLOY, state=W.RUNNING, round=1))
    assert (status.stage, status.state, status.deploys) == (S.TRAIN, W.WAITING, 1)
    inference = envs(status)["inference"]
    assert inference["MODEL_URLS"] == f"{OUT}/deploy/index.json"
    assert inference["OUTPUT_URL"] == OUT

    # Round 2 updates what round 1 learnt; a new deploy restarts the inference worker.
    status = run(status, cut(2))
    train = envs(status)["train"]
    assert train["HAS_COMPLETED_INITIAL_TRAINING"] == "true"
    assert train["CLOUD_KB_INDEX"] == f"{OUT}/train/1/index.json"
    served = envs(status)["inference"]["SEDNA_SERVED_MODEL"]
    status = run(
        status,
        done(S.TRAIN, 2, index("train", 2)),
        done(S.EVAL, 2, index("eval", 2, deployable_tasks=1, evaluated_tasks=3)),
        StageMessage(stage=S.DEPLOY, state=W.RUNNING, round=2),
    )
    assert status.deploys == 2
    assert envs(status)["inference"]["SEDNA_SERVED_MODEL"] != served


def test_a_round_whose_eval_selects_nothing_deploys_nothing_and_says_why() -> None:
    status = run(
        StagedJobStatus(),
        cut(1),
        done(S.TRAIN, 1, index("train", 1)),
        done(S.EVAL, 1, index("eval", 1, deployable_tasks=0, evaluated_tasks=2)),
    )
    assert (status.stage, status.state) == (S.TRAIN, W.WAITING)
    assert status.deploys == 0 and status.skipped_deploys == 1
    assert status.last_decision.deploy is False
    assert "none of the 2 evaluated tasks passes the eval filter" in status.last_decision.reason
    no_deploy = [c for c in status.conditions if c.reason == "NoDeploy"]
    assert no_deploy and "none of the 2 evaluated tasks" in no_deploy[0].message
    assert POLICY.directive(JOB, CTX, status).deploy is None
    assert "inference" not in envs(status)


def test_a_failed_train_worker_fails_the_round_and_a_later_round_succeeds() -> None:
    status = run(
        StagedJobStatus(),
        cut(1),
        WorkerResult(stage=S.TRAIN, round=1, status="failed", message="boom"),
    )
    assert (status.stage, status.state, status.failed_rounds) == (S.TRAIN, W.WAITING, 1)
    assert any(c.type == "Failed" and "boom" in c.message for c in status.conditions)
    # A train worker that reports no index fails its stage too.
    status = run(status, cut(2), done(S.TRAIN, 2))
    assert status.failed_rounds == 2
    assert any("reported no task index" in (c.message or "") for c in status.conditions)
    status = run(
        status,
        cut(3),
        done(S.TRAIN, 3, index("train", 3)),
        done(S.EVAL, 3, index("eval", 3, deployable_tasks=2, evaluated_tasks=2)),
        StageMessage(stage=S.DEPLOY, state=W.RUNNING, round=3),
    )
    assert (status.round, status.deploys, status.failed_rounds) == (3, 1, 2)
    # Round 3 was the first successful training: nothing to update from.
    assert status.trained_model.url == f"{OUT}/train/3/index.json"


def _message(role: str, **output) -> WorkerMessage:
    return WorkerMessage(
        worker=f"digits-ll-{role}", status="completed", output=WorkerOutput.model_validate(output)
    )


def test_status_knowledge_base_follows_the_reports() -> None:
    status: dict = {}
    report = {
        "format": "json",
        "url": f"{OUT}/eval/1/index.json",
        "metrics": {"precision_score": 0.97},
        "classes": ["0", "1"],
        "current_metric": {"upright": {"precision_score": 0.967}},
        "task_samples": {"upright": 320, "mirrored": 320},
        "number_of_labeled_unseen_sample": 0,
    }
    POLICY.fold_extra(status, _message("eval", models=[report]), "eval")
    kb = status["knowledgeBase"]
    assert kb["AIModels"]["numberOfAIModels"] == 2
    assert kb["AIModels"]["listOfAIModels"][0] == {
        "modelID": "upright",
        "averagePrecision": 0.967,
        "numberOfTrainSamples": 320,
    }
    assert kb["AIClasses"] == {"numberOfAIClasses": 2, "listOfAIClasses": ["0", "1"]}
    # The inference worker's unseen count; a later train report keeps the scores it lacks.
    POLICY.fold_extra(status, _message("inference", taskInfo={"unseenNumber": 540}), "inference")
    later = {**report, "current_metric": None, "task_samples": {"upright": 320, "inverted": 320}}
    later["number_of_labeled_unseen_sample"] = 320
    POLICY.fold_extra(status, _message("train", models=[later]), "train")
    kb = status["knowledgeBase"]
    assert [m["modelID"] for m in kb["AIModels"]["listOfAIModels"]] == ["upright", "inverted"]
    assert kb["AIModels"]["listOfAIModels"][0]["averagePrecision"] == 0.967
    assert kb["samples"] == {"numberOfLabeledUnseenSample": 320, "numberOfUnseenSample": 540}
    samples = dict(((n, labels), v) for n, labels, v in POLICY.samples({**status, "round": 1}))
    assert samples[("sedna_lifelong_known_tasks", ())] == 2
