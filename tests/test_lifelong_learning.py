"""The lifelong learning library: tasks, unseen detection, the index, and the KB together."""

from __future__ import annotations

import json
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest

from kb import KBServer
from lc.report_server import ReportServer
from sedna.algorithms.seen_task_learning import (
    TaskAllocationByDataAttr,
    TaskAllocationBySVC,
    TaskDefinitionByDataAttr,
    TaskDefinitionBySVC,
)
from sedna.algorithms.unseen_task_detection import calibrate_threshold, knn_distance
from sedna.common.class_factory import ClassFactory, ClassType
from sedna.common.errors import ConfigError
from sedna.core.lifelong_learning import KnowledgeIndex, LifelongLearning
from sedna.datasources import CSVDataParse

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "lifelong_learning"
sys.path.insert(0, str(EXAMPLE))

import run_local  # noqa: E402
import tasks as digits  # noqa: E402
from estimator import TaskEstimator  # noqa: E402

BY_TASK = {"method": "TaskDefinitionByDataAttr", "param": {"attribute": ["task"]}}


def table(path: Path, task_names: list[str], part: int) -> CSVDataParse:
    """A CSV dataset of the example's tasks (part 0: train rows, part 1: eval rows)."""
    for task in task_names:
        digits.write_csv(path, task, *digits.split_train_eval(task)[part])
    return CSVDataParse(data_type="train").parse(path, label="label")


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("KB_SERVER", "LC_SERVER", "HAS_COMPLETED_INITIAL_TRAINING", "CLOUD_KB_INDEX"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("operator", ">=")
    monkeypatch.setenv("model_threshold", "0.6")
    return tmp_path


def learn(env: Path, monkeypatch: pytest.MonkeyPatch, task_names: list[str]) -> LifelongLearning:
    """Train and evaluate ``task_names`` in-process; the eval index is deployed."""
    ll = LifelongLearning(TaskEstimator, task_definition=BY_TASK)
    monkeypatch.setenv("OUTPUT_URL", str(env / "train"))
    ll.train(table(env / "train.csv", task_names, 0))
    monkeypatch.setenv("MODEL_URLS", str(env / "train" / "index.json"))
    monkeypatch.setenv("OUTPUT_URL", str(env / "eval"))
    ll.evaluate(table(env / "eval.csv", task_names, 1), metrics_param={"average": "macro"})
    monkeypatch.setenv("MODEL_URLS", str(env / "eval" / "index.json"))
    monkeypatch.setenv("OUTPUT_URL", str(env / "serve"))
    return ll


def stream(path: Path, rows: list[tuple[str, int]]) -> CSVDataParse:
    """Hold-out rows: (task, row number) pairs, in that order."""
    for task, i in rows:
        x, y = digits.holdout(task)
        digits.write_csv(path, task, x[i : i + 1], y[i : i + 1])
    return CSVDataParse(data_type="test").parse(path, label="label")


def test_upstream_names_are_registered() -> None:
    for kind, name in [
        (ClassType.STP, "TaskDefinitionByDataAttr"),
        (ClassType.STP, "TaskDefinitionBySVC"),
        (ClassType.STP, "TaskAllocationByDataAttr"),
        (ClassType.STP, "TaskAllocationBySVC"),
        (ClassType.STP, "DefaultTaskRelationDiscover"),
        (ClassType.KM, "UpdateStrategyDefault"),  # upstream's default, never registered there
        (ClassType.UTD, "SampleRegonitionDefault"),
        (ClassType.UTD, "SampleReRegonitionDefault"),
        (ClassType.UTD, "TaskAttrFilter"),
        (ClassType.UTD, "SampleRecognitionByDistance"),
    ]:
        assert ClassFactory.is_exists(kind, name), name


def test_an_unknown_attribute_value_is_unseen_not_task_0(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ll = learn(env, monkeypatch, ["upright", "mirrored"])
    rows = [("inverted", 0), ("mirrored", 1), ("upright", 2), ("inverted", 3)]
    data = stream(env / "stream.csv", rows)
    result, unseen, used = ll.inference(data)
    assert unseen == [True, False, False, True]
    assert used == [None, "mirrored", "upright", None]
    assert len(result) == 4
    # Results in input order (upstream puts unseen results first).
    _, y = digits.holdout("mirrored")
    assert result[1] == y[1]
    # The allocation itself says "no task", never the first one.
    extractor = KnowledgeIndex.load(env / "serve" / ".." / "eval").seen_task.extractor
    _, entries = TaskAllocationByDataAttr(extractor)(data)
    assert entries == [None, "mirrored", "upright", None]
    assert ll.inference_counts == {
        "inferenceNumber": 4,
        "seenNumber": 2,
        "unseenNumber": 2,
        "readyNumber": 0,
        "errorNumber": 0,
    }


def test_unseen_samples_are_saved_for_labelling_in_the_datasets_format(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ll = learn(env, monkeypatch, ["upright"])
    monkeypatch.setenv("UT_SAVED_URL", str(env / "unseen"))
    ll.inference(stream(env / "s.csv", [("inverted", 0), ("upright", 0), ("mirrored", 5)]))
    saved = env / "unseen" / "unseen_samples.csv"
    lines = saved.read_text().splitlines()
    assert lines[0] == ",".join(digits.HEADER)
    assert [line.split(",")[0] for line in lines[1:]] == ["inverted", "mirrored"]
    assert all(line.endswith(",") for line in lines[1:])  # the label column, to fill in
    # Labelled, the file is a dataset again.
    saved.write_text("\n".join([lines[0]] + [line + "3" for line in lines[1:]]) + "\n")
    parsed = CSVDataParse().parse(saved, label="label")
    assert list(parsed.x.columns) == digits.HEADER[:-1] and list(parsed.y) == [3, 3]


def test_without_the_attribute_a_calibrated_distance_detects_unseen_samples(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ll = learn(env, monkeypatch, ["upright", "mirrored"])
    index = KnowledgeIndex.load(env / "eval" / "index.json")
    detector = index.seen_task.detector
    assert detector["method"] == "SampleRecognitionByDistance"
    assert detector["threshold"] == pytest.approx(2.113, abs=0.01)
    flagged = {}
    for task in digits.TASKS:
        data = CSVDataParse()
        data.x, data.y = digits.holdout(task)  # no task column at all
        _, unseen, used = ll.inference(data)
        flagged[task] = float(np.mean(unseen))
        if task != "inverted":
            # Seen samples are allocated to the nearest task: mostly their own.
            assert np.mean([u == task for u in used if u]) > 0.9
    assert flagged["inverted"] == 1.0
    assert flagged["upright"] <= 0.10 and flagged["mirrored"] <= 0.10


def test_eval_filter_withholds_weak_tasks_and_their_samples_stay_unseen(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("model_threshold", "0.99")
    ll = learn(env, monkeypatch, ["upright", "mirrored"])
    index = KnowledgeIndex.load(env / "eval" / "index.json")
    assert {g.entry: g.deploy for g in index.seen_task.task_groups} == {
        "upright": False,
        "mirrored": False,
    }
    with pytest.raises(ConfigError, match="no deployable task group"):
        ll.inference(stream(env / "s.csv", [("upright", 0)]))


def test_task_definition_without_attribute_and_its_allocation() -> None:
    data = CSVDataParse()
    xu, yu = digits.task_rows("upright")
    xi, yi = digits.task_rows("inverted")
    data.x, data.y = np.vstack([xu, xi]), np.concatenate([yu, yi])
    tasks, extractor, _ = TaskDefinitionBySVC(n_class=2)(data)
    json.dumps(extractor)  # data, not an object
    sizes = sorted(len(t.samples) for t in tasks)
    assert sizes == [400, 400]  # the two transforms are the two clusters
    _, entries = TaskAllocationBySVC(extractor)(data)
    assert len(set(entries[:400])) == 1 and set(entries[:400]) != set(entries[400:])


def test_task_definition_by_attribute_names_the_missing_column() -> None:
    data = CSVDataParse()
    data.x = np.zeros((3, 4))
    with pytest.raises(ValueError, match=r"no column.*season"):
        TaskDefinitionByDataAttr(attribute=["season"])(data)


def test_parameters_as_json_strings_work(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Upstream's json.loads(..., encoding=) fails on Python >= 3.9 for exactly this form.
    ll = LifelongLearning(
        TaskEstimator,
        task_definition={"method": "TaskDefinitionByDataAttr", "param": '{"attribute": ["task"]}'},
    )
    assert ll.task_definition.attribute == ["task"]
    with pytest.raises(ConfigError, match=r"unknown .* algorithm 'Nope'"):
        LifelongLearning(TaskEstimator, task_definition={"method": "Nope"})


class RecordingEstimator(TaskEstimator):
    """The example's estimator, remembering the keyword arguments each ``train`` got."""

    calls: list[dict] = []

    def train(self, train_data, valid_data=None, **kwargs):
        RecordingEstimator.calls.append(kwargs)
        return super().train(train_data, valid_data)


def test_upstream_estimator_keyword_and_train_arguments_reach_every_task(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # atcii's train.py: LifelongLearning(estimator=...).train(train_data=..., metric_name=...)
    RecordingEstimator.calls.clear()
    monkeypatch.setenv("OUTPUT_URL", str(env / "train"))
    ll = LifelongLearning(estimator=RecordingEstimator, task_definition=BY_TASK)
    data = table(env / "t.csv", ["upright", "mirrored"], 0)
    with pytest.raises(ConfigError, match="action"):
        ll.train(train_data=data, action="retrain")
    results = ll.train(train_data=data, action="initial_train", metric_name="m")
    assert set(results) == {"upright", "mirrored"}
    assert RecordingEstimator.calls == [{"metric_name": "m"}] * 2
    # eval.py: evaluate(data, metrics=precision_score, metrics_param={"average": "micro"}) -
    # the parameters reach the callable (without them the ten digits fail a binary average).
    from sklearn.metrics import precision_score

    monkeypatch.setenv("MODEL_URLS", str(env / "train" / "index.json"))
    monkeypatch.setenv("OUTPUT_URL", str(env / "eval"))
    scores = ll.evaluate(
        table(env / "e.csv", ["upright", "mirrored"], 1),
        metrics=precision_score,
        metrics_param={"average": "micro"},
    )
    assert scores["precision_score"] > 0.9
    with pytest.raises(ConfigError, match="once"):
        LifelongLearning(TaskEstimator, estimator=TaskEstimator, task_definition=BY_TASK)
    with pytest.raises(ConfigError, match="once"):
        LifelongLearning(task_definition=BY_TASK)


def test_the_index_is_json_and_a_pickle_is_refused(tmp_path: Path) -> None:
    (tmp_path / "index.json").write_bytes(pickle.dumps({"seen_task": {}}))
    with pytest.raises(ConfigError, match="pickled index"):
        KnowledgeIndex.load(tmp_path)
    (tmp_path / "index.json").write_text('{"seen_task": {"task_groups": [{"entry": 1}]}}')
    with pytest.raises(ConfigError, match="not a task index"):
        KnowledgeIndex.load(tmp_path)


def test_knn_distance_and_calibration() -> None:
    references = {"a": np.zeros((5, 2)), "b": np.full((5, 2), 10.0)}
    x = np.array([[0.0, 1.0], [10.0, 12.0], [5.0, 5.0]])
    assert knn_distance(x, references, k=5).tolist() == pytest.approx([1.0, 2.0, 50**0.5])
    assert calibrate_threshold(x[:2], references, k=5, quantile=1.0) == pytest.approx(2.0)


def test_two_rounds_with_the_knowledge_base_and_the_lc(tmp_path: Path, kb_server: KBServer) -> None:
    """The example's scenario through the worker scripts, a real KB and a real report server."""
    reports = []
    lc = ReportServer(reports.append, port=0)
    lc.start()
    try:
        figures = run_local.run(tmp_path / "work", kb_server.url, lc.url)
    finally:
        lc.close()
    first, second = figures["rounds"]
    seen = ("upright", "mirrored")
    # Round 1: two tasks in the knowledge base, both deployed.
    assert first["knowledge_base"]["AIModels"]["numberOfAIModels"] == 2
    assert first["knowledge_base"]["AIClasses"]["numberOfAIClasses"] == 10
    assert sorted(first["deployed"]) == sorted(seen)
    held = first["inference"]
    assert held["tasks"]["inverted"]["unseen"] == 1.0  # every unseen sample flagged
    assert all(held["tasks"][t]["unseen"] <= 0.10 for t in seen)
    assert held["mixed_accuracy"] == pytest.approx(0.63, abs=0.02)
    for task in seen:  # per-task models beat one global model on each seen task
        assert held["tasks"][task]["accuracy"] > first["global_model"][task]
    free = first["attribute_free"]["tasks"]
    assert free["inverted"]["unseen"] == 1.0
    assert all(free[t]["unseen"] <= 0.10 for t in seen)
    # The arrivals of the new task were all flagged, saved, labelled and appended.
    assert first["arrivals"]["tasks"]["inverted"]["unseen"] == 1.0
    assert figures["labelled"] == 400
    # Round 2 (the update path): three tasks, nothing unseen any more, accuracy up.
    assert second["knowledge_base"]["AIModels"]["numberOfAIModels"] == 3
    assert second["knowledge_base"]["samples"]["numberOfLabeledUnseenSample"] == 320
    assert sorted(second["deployed"]) == ["inverted", "mirrored", "upright"]
    assert all(v["unseen"] == 0.0 for v in second["inference"]["tasks"].values())
    assert second["inference"]["mixed_accuracy"] >= 0.93
    # The LC heard every stage, and the inference counts.
    kinds = [(r.kind, r.status) for r in reports]
    assert kinds.count(("train", "completed")) == 2 and kinds.count(("eval", "completed")) == 2
    counts = [
        r.task_info.model_dump(by_alias=True, exclude_none=True)
        for r in reports
        if r.kind == "inference"
    ]
    totals = [(c["inferenceNumber"], c["seenNumber"], c["unseenNumber"]) for c in counts]
    assert (1620, 1080, 540) in totals  # the hold-out before round 2, reported at its end
    assert totals[-1] == (1620, 1620, 0)  # ... and after round 2
    evals = [r for r in reports if r.kind == "eval"]
    current = evals[-1].models[0].model_dump()
    assert set(current["current_metric"]) == {"upright", "mirrored", "inverted"}


def _txt_dataset(root: Path, name: str, tasks: list[str], part: int) -> Path:
    """A txt index (``samples/<task>-<i>.txt <label>``) of the example's rows, one file each."""
    samples = root / "samples"
    samples.mkdir(parents=True, exist_ok=True)
    index = root / f"{name}.txt"
    with index.open("a", encoding="utf-8") as handle:
        for task in tasks:
            x, y = digits.split_train_eval(task)[part]
            for i, (row, label) in enumerate(zip(x, y, strict=True)):
                sample = samples / f"{task}-{part}-{i}.txt"
                sample.write_text(" ".join(f"{v:.6g}" for v in row))
                handle.write(f"samples/{sample.name} {label}\n")
    return index


def _load_line(root: Path):
    def load(line: str) -> tuple[np.ndarray, int]:
        path, label = line.split()
        return np.loadtxt(root / path), int(label)

    return load


def test_a_txt_dataset_without_attribute_learns_clusters_and_detects_unseen(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sedna.datasources import TxtDataParse

    by_cluster = {"method": "TaskDefinitionBySVC", "param": {"n_class": 2}}
    # Clusters of pixels are groups of digits, each model knows only its digits: deploy all.
    monkeypatch.setenv("model_threshold", "0")
    ll = LifelongLearning(TaskEstimator, task_definition=by_cluster)
    load = _load_line(env)
    train = TxtDataParse(data_type="train", func=load).parse(
        _txt_dataset(env, "train", ["upright", "mirrored"], 0)
    )
    monkeypatch.setenv("OUTPUT_URL", str(env / "train"))
    ll.train(train)
    monkeypatch.setenv("MODEL_URLS", str(env / "train" / "index.json"))
    monkeypatch.setenv("OUTPUT_URL", str(env / "eval"))
    evaluation = TxtDataParse(data_type="eval", func=load).parse(
        _txt_dataset(env, "eval", ["upright", "mirrored"], 1)
    )
    scores = ll.evaluate(evaluation, metrics_param={"average": "macro"})
    assert scores["precision_score"] > 0.85
    monkeypatch.setenv("MODEL_URLS", str(env / "eval" / "index.json"))
    index = KnowledgeIndex.load(env / "eval")
    assert index.seen_task.extractor["method"] == "TaskDefinitionBySVC"
    assert index.seen_task.detector["threshold"] > 0
    flagged = {}
    for task in digits.TASKS:
        data = TxtDataParse(data_type="eval")
        data.x, data.y = digits.holdout(task)
        _, unseen, _ = ll.inference(data)
        flagged[task] = float(np.mean(unseen))
    assert flagged["inverted"] == 1.0
    assert flagged["upright"] <= 0.15 and flagged["mirrored"] <= 0.15
