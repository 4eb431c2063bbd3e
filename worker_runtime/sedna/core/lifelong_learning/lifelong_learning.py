"""``LifelongLearning``: multi-task models that grow, round after round, in a knowledge base.

Upstream Sedna's API (``train``, ``update``, ``evaluate``, ``inference`` returning the result,
whether each sample's task is unseen, and the tasks used), with its defects fixed: the index is
JSON, unknown tasks are unseen instead of being routed to task 0, unseen samples are detected
(by attribute, or by distance with a threshold calibrated on seen evaluation data), the update
path is registered, results come back in input order, and inference counts reach the LC.

Environment (upstream's names): ``OUTPUT_URL``, ``KB_SERVER``, ``HAS_COMPLETED_INITIAL_TRAINING``,
``CLOUD_KB_INDEX``, ``MODEL_URLS``, ``TRAIN_DATASET_URL``, ``TEST_DATASET_URL``,
``DATA_PATH_PREFIX``, ``MIN_TRAIN_SAMPLE`` (10), ``operator`` (``>=``) and ``model_threshold``
(0.1) of the eval filter, ``metrics`` / ``metric_param``, ``UT_SAVED_URL`` (where unseen
samples go; default ``OUTPUT_URL/unseen_samples``), ``label`` (the label column's name in the
saved unseen samples), ``REPORT_INTERVAL_SECONDS`` (10).
"""

from __future__ import annotations

import copy
import csv
import inspect
import operator as op
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from sedna.algorithms.knowledge_management import UpdateStrategyDefault
from sedna.algorithms.seen_task_learning import (
    DefaultTaskRelationDiscover,
    TaskGroup,
    allocation_for,
    concat,
)
from sedna.algorithms.seen_task_learning.artifact import feature_names
from sedna.algorithms.unseen_task_detection import calibrate_threshold, knn_distance
from sedna.algorithms.unseen_task_detection.recognition import DEFAULT_K, DEFAULT_QUANTILE
from sedna.common.class_factory import ClassType
from sedna.common.config import BaseConfig, Context
from sedna.common.errors import ConfigError
from sedna.common.log import get_logger
from sedna.common.report import LCReporter, ReportedModel, TaskInfo, utc_now
from sedna.core.lifelong_learning.algorithms import build, parse_param
from sedna.core.lifelong_learning.index import GroupInfo, KnowledgeIndex, ModelInfo, SampleInfo
from sedna.core.lifelong_learning.index import TaskInfo as IndexTask
from sedna.core.lifelong_learning.kb_client import KBClient, KnowledgeBaseError
from sedna.datasources import BaseDataSource

LOG = get_logger("lifelong_learning")

_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">": op.gt,
    ">=": op.ge,
    "<": op.lt,
    "<=": op.le,
    "=": op.eq,
    "==": op.eq,
}


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("true", "1", "yes")


class LifelongLearning:
    """Lifelong learning over a knowledge base of tasks (``from sedna.core.lifelong_learning``)."""

    job_kind = "lifelonglearningjob"

    def __init__(
        self,
        seen_estimator: Any = None,
        unseen_estimator: Any = None,
        task_definition: dict[str, Any] | None = None,
        task_relationship_discovery: dict[str, Any] | None = None,
        task_allocation: dict[str, Any] | None = None,
        task_remodeling: dict[str, Any] | None = None,
        inference_integrate: dict[str, Any] | None = None,
        task_update_decision: dict[str, Any] | None = None,
        unseen_task_allocation: dict[str, Any] | None = None,
        unseen_sample_recognition: dict[str, Any] | None = None,
        unseen_sample_re_recognition: dict[str, Any] | None = None,
        reporter: LCReporter | None = None,
        estimator: Any = None,
    ) -> None:
        # ``estimator=`` is the name upstream's atcii example (and its older library) uses.
        if (seen_estimator is None) == (estimator is None):
            raise ConfigError("give the task estimator once: seen_estimator (or estimator)")
        self.seen_estimator = seen_estimator if seen_estimator is not None else estimator
        self.unseen_estimator = unseen_estimator
        if task_definition is None:
            attribute = Context.get_parameters("attribute")
            if not attribute:
                raise ConfigError(
                    "name a task_definition (e.g. TaskDefinitionByDataAttr with attribute=[...]) "
                    "or set the attribute parameter"
                )
            task_definition = {
                "method": "TaskDefinitionByDataAttr",
                "param": {"attribute": attribute},
            }
        self.task_definition = build(ClassType.STP, task_definition, "", "task_definition")
        self.task_relationship_discovery = build(
            ClassType.STP,
            task_relationship_discovery,
            DefaultTaskRelationDiscover.__name__,
            "task_relationship_discovery",
        )
        self.task_allocation_config = task_allocation
        self.task_update_decision = build(
            ClassType.KM,
            task_update_decision,
            UpdateStrategyDefault.__name__,
            "task_update_decision",
        )
        self.unseen_sample_recognition = build(
            ClassType.UTD, unseen_sample_recognition, "SampleRegonitionDefault", "recognition"
        )
        self.unseen_sample_re_recognition = build(
            ClassType.UTD,
            unseen_sample_re_recognition,
            "SampleReRegonitionDefault",
            "re-recognition",
        )
        for name, config, default in (
            ("task_remodeling", task_remodeling, "DefaultTaskRemodeling"),
            ("inference_integrate", inference_integrate, "DefaultInferenceIntegrate"),
            ("unseen_task_allocation", unseen_task_allocation, "UnseenTaskAllocationDefault"),
        ):
            if config is not None and config.get("method") != default:
                raise ConfigError(f"{name}: only {default} is supported, got {config!r}")
        self.reporter = reporter or LCReporter.from_env()
        self._models: dict[tuple[str, float], Any] = {}
        self._serving: tuple[str, float, KnowledgeIndex] | None = None
        self._references: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()
        self._counts = {
            "inferenceNumber": 0,
            "seenNumber": 0,
            "unseenNumber": 0,
            "readyNumber": 0,  # handed to inference, not answered yet
            "errorNumber": 0,  # whose inference raised
        }
        self._started = utc_now()
        self._last_report = 0.0

    # -- configuration ---------------------------------------------------------------------

    @property
    def output_url(self) -> Path:
        """Where this round's models and index go (``OUTPUT_URL``)."""
        return Path(BaseConfig.output_url or "output")

    @property
    def kb_key(self) -> str:
        """This job's knowledge base: ``<namespace>/<job>``, ``default`` without a job."""
        job = BaseConfig.resource_name()
        return f"{BaseConfig.namespace or 'default'}/{job}" if job else "default"

    def _kb(self) -> KBClient | None:
        return KBClient(BaseConfig.kb_server, self.kb_key) if BaseConfig.kb_server else None

    @staticmethod
    def _resolve(url: str) -> str:
        prefix = BaseConfig.data_path_prefix
        if prefix and not os.path.isabs(url) and "://" not in url:
            return os.path.join(prefix, url)
        return url

    # -- training --------------------------------------------------------------------------

    def train(
        self,
        train_data: BaseDataSource,
        valid_data: BaseDataSource | None = None,
        post_process: Callable[..., Any] | None = None,
        action: str = "initial_train",
        **kwargs: Any,
    ) -> Any:
        """Define tasks, train one model per task group, store the index; after the first
        round (``HAS_COMPLETED_INITIAL_TRAINING=true``, or ``action="update"``) this is
        :meth:`update`. Other keyword arguments go to the estimator's ``train``."""
        if action not in ("initial_train", "update"):
            raise ConfigError(f"action must be 'initial_train' or 'update', got {action!r}")
        if action == "update" or _truthy(BaseConfig.has_completed_initial_training):
            return self.update(train_data, valid_data, post_process, **kwargs)
        tasks, extractor, _ = self.task_definition(train_data)
        index = KnowledgeIndex(kb=self.kb_key, classes=_classes(train_data))
        index.seen_task.extractor = extractor
        groups = self.task_relationship_discovery(tasks)
        results = self._learn(index, groups, **kwargs)
        self._publish(index, "train")
        return post_process(self, results) if post_process else results

    def update(
        self,
        train_data: BaseDataSource,
        valid_data: BaseDataSource | None = None,
        post_process: Callable[..., Any] | None = None,
        **kwargs: Any,
    ) -> Any:
        """Add what ``train_data`` teaches to the known index: known tasks are retrained on
        their new samples, new tasks join the knowledge base."""
        index = self._known_index()
        tasks, extractor, _ = self.task_definition(train_data)
        known = {g.entry for g in index.seen_task.task_groups}
        decisions = self.task_update_decision(known, tasks)
        new = [task for task, decision in decisions if decision == "new"]
        groups = self.task_relationship_discovery([task for task, _ in decisions])
        index.seen_task.extractor = _merge_extractors(index.seen_task.extractor, extractor)
        index.classes = sorted(set(index.classes) | set(_classes(train_data)), key=_class_key)
        index.number_of_labeled_unseen_sample += sum(len(t.samples) for t in new)
        index.create_time = f"{time.time():.6f}"
        LOG.info(
            "updating the knowledge base",
            extra={"retrained": len(tasks) - len(new), "new_tasks": [t.entry for t in new]},
        )
        results = self._learn(index, groups, **kwargs)
        self._publish(index, "train")
        return post_process(self, results) if post_process else results

    def _known_index(self) -> KnowledgeIndex:
        """What is known: the knowledge base's index (it holds the last evaluation's scores,
        deploy flags and threshold), else ``CLOUD_KB_INDEX`` (the last train round's)."""
        kb, url = self._kb(), BaseConfig.cloud_kb_index
        if kb is not None:
            try:
                return kb.index()
            except KnowledgeBaseError as error:
                if not url:
                    raise
                LOG.warning("knowledge base index unavailable; using CLOUD_KB_INDEX: %s", error)
        if url:
            return KnowledgeIndex.load(self._resolve(url))
        raise ConfigError("update needs KB_SERVER or CLOUD_KB_INDEX to find what is known")

    def _new_estimator(self) -> Any:
        estimator = self.seen_estimator
        return estimator() if isinstance(estimator, type) else copy.deepcopy(estimator)

    def _learn(self, index: KnowledgeIndex, groups: list[TaskGroup], **kwargs: Any) -> dict:
        minimum = int(Context.get_parameters("MIN_TRAIN_SAMPLE", 10))
        out = self.output_url / "seen_task"
        out.mkdir(parents=True, exist_ok=True)
        small = [g for g in groups if len(g.samples) < minimum]
        shared: str | None = None
        if small:
            # Upstream's rule: groups too small for a model of their own share one global model.
            shared = self._fit(concat([g.samples for g in groups]), out / "global.model", **kwargs)
        results = {}
        for group in groups:
            data = group.samples
            model_url = (
                shared
                if group in small
                else self._fit(data, out / f"{group.entry}.model", **kwargs)
            )
            reference = None
            x = np.asarray(data.x)
            if x.dtype != object:
                reference = str(out / f"{group.entry}.reference.npy")
                np.save(reference, x.astype(np.float64), allow_pickle=False)
            info = GroupInfo(
                entry=group.entry,
                tasks=[
                    IndexTask(
                        entry=t.entry,
                        meta_attr=[str(v) for v in t.meta_attr],
                        samples=SampleInfo(
                            data_url=BaseConfig.train_dataset_url or "", sample_num=len(t.samples)
                        ),
                    )
                    for t in group.tasks
                ],
                model=ModelInfo(url=model_url or "", format=Path(model_url or "").suffix[1:]),
                sample_num=len(data),
                reference=reference,
            )
            side = index.seen_task
            side.task_groups = [g for g in side.task_groups if g.entry != group.entry] + [info]
            results[group.entry] = {"samples": len(data), "model": model_url}
        return results

    def _fit(self, data: BaseDataSource, path: Path, **kwargs: Any) -> str:
        estimator = self._new_estimator()
        if callable(getattr(estimator, "train", None)):
            estimator.train(data, **kwargs)
        else:
            estimator.fit(data.x, data.y)
        estimator.save(str(path))
        return str(path)

    def _publish(self, index: KnowledgeIndex, kind: str, metrics: dict | None = None) -> str:
        path = index.save(self.output_url)
        kb = self._kb()
        if kb is not None:
            kb.update(index)
        prefix = BaseConfig.data_path_prefix
        url = path[len(prefix) :] if prefix and path.startswith(prefix) else path
        model = ReportedModel(
            format="json",
            url=url,
            metrics=metrics or {"number_of_tasks": float(len(index.seen_task.task_groups))},
            classes=index.classes,
            current_metric={g.entry: g.scores for g in index.seen_task.task_groups if g.scores}
            or None,
            number_of_labeled_unseen_sample=index.number_of_labeled_unseen_sample,
            task_samples={g.entry: g.sample_num for g in index.seen_task.task_groups},
        )
        report = self.reporter.build(
            owner_kind=self.job_kind, kind=kind, status="completed", models=[model]
        )
        self.reporter.report(report)
        LOG.info("index published", extra={"index": path, "kind": kind})
        return path

    # -- evaluation ------------------------------------------------------------------------

    def evaluate(
        self,
        data: BaseDataSource,
        post_process: Callable[..., Any] | None = None,
        metrics: Any = None,
        metrics_param: dict[str, Any] | str | None = None,
        **kwargs: Any,
    ) -> dict[str, float]:
        """Score each task group on ``data``, flag the groups good enough to deploy, calibrate
        the unseen-sample threshold on the deployed ones; returns the overall scores."""
        urls = (BaseConfig.model_urls or "").split(";")
        if not urls[0]:
            raise ConfigError("evaluate needs MODEL_URLS (the train round's index)")
        index = KnowledgeIndex.load(self._resolve(urls[0]))
        scorers = _scorers(metrics, metrics_param)
        threshold = float(Context.get_parameters("model_threshold", 0.1))
        compare = _OPERATORS.get(str(Context.get_parameters("operator", ">=")).strip())
        if compare is None:
            raise ConfigError(f"operator must be one of {', '.join(_OPERATORS)}")
        x, entries = self._allocate(index, data)
        y = np.asarray(data.y)
        predicted, truth, evaluated = [], [], []
        for group in index.seen_task.task_groups:
            rows = [i for i, e in enumerate(entries) if e == group.entry]
            if not rows or group.model is None:
                continue
            guess = np.asarray(self._model(group.model.url).predict(x[rows]))
            group.scores = {name: float(score(y[rows], guess)) for name, score in scorers.items()}
            group.deploy = all(compare(v, threshold) for v in group.scores.values())
            for task in group.tasks:
                task.scores = dict(group.scores)
                task.test_samples = SampleInfo(
                    data_url=BaseConfig.test_dataset_url or "",
                    data_type="eval",
                    sample_num=len(rows),
                )
            predicted.append(guess)
            truth.append(y[rows])
            evaluated.append(group)
            LOG.info(
                "task evaluated",
                extra={"task": group.entry, "scores": group.scores, "deploy": group.deploy},
            )
        if not predicted:
            raise ConfigError("no evaluation sample belongs to a task of the index")
        overall = {
            name: float(score(np.concatenate(truth), np.concatenate(predicted)))
            for name, score in scorers.items()
        }
        # What the deploy decision needs: how many tasks this round evaluated and passed.
        overall["evaluated_tasks"] = float(len(evaluated))
        overall["deployable_tasks"] = float(sum(g.deploy for g in evaluated))
        self._calibrate(index, x, entries)
        index.create_time = f"{time.time():.6f}"
        self._publish(index, "eval", overall)
        return post_process(overall) if post_process else overall

    def _calibrate(self, index: KnowledgeIndex, x: np.ndarray, entries: list[str | None]) -> None:
        deployed = index.deployed()
        references = self._references_of(index, deployed)
        rows = [i for i, e in enumerate(entries) if e in deployed]
        if x.dtype == object or not references or not rows:
            return
        k = int(Context.get_parameters("unseen_k", DEFAULT_K))
        quantile = float(Context.get_parameters("unseen_quantile", DEFAULT_QUANTILE))
        index.seen_task.detector = {
            "method": "SampleRecognitionByDistance",
            "k": k,
            "quantile": quantile,
            "threshold": calibrate_threshold(x[rows], references, k, quantile),
            "calibration_samples": len(rows),
        }

    # -- inference -------------------------------------------------------------------------

    def inference(
        self,
        data: BaseDataSource,
        post_process: Callable[..., Any] | None = None,
        unseen_sample_postprocess: Callable[..., Any] | None = None,
        **kwargs: Any,
    ) -> tuple[Any, Any, Any]:
        """``(result, is_unseen, tasks)`` in input order: a bool for one sample, else a list;
        ``tasks`` names the task that answered each sample (``None`` when unseen)."""
        try:
            size = len(data.x)
        except TypeError:
            size = 1
        self._tally("readyNumber", size)
        try:
            return self._infer(data, post_process, unseen_sample_postprocess, **kwargs)
        except Exception:
            self._tally("errorNumber", size)
            raise
        finally:
            self._tally("readyNumber", -size)

    def _tally(self, key: str, delta: int) -> None:
        with self._lock:
            self._counts[key] += delta

    def _infer(
        self,
        data: BaseDataSource,
        post_process: Callable[..., Any] | None,
        unseen_sample_postprocess: Callable[..., Any] | None,
        **kwargs: Any,
    ) -> tuple[Any, Any, Any]:
        index = self.serving_index()
        deployed = index.deployed()
        if not deployed:
            raise ConfigError("the deployed index has no deployable task group")
        x, entries = self._allocate(index, data, required=False)
        references = self._references_of(index, deployed)
        detector = index.seen_task.detector or {}
        # Only an attribute says which task a sample is of; clusters always name the nearest.
        by_attribute = (index.seen_task.extractor or {}).get("method") == "TaskDefinitionByDataAttr"
        told = entries if by_attribute else None
        unseen = np.asarray(
            self.unseen_sample_recognition(x, told, deployed, references, detector), dtype=bool
        )
        if entries is None:
            entries = self._nearest(x, references, deployed)
        # A sample of a task that is known but not deployed is unseen to what is served.
        unseen |= np.array([e not in deployed for e in entries], dtype=bool)
        answer: list[Any] = [None] * len(x)
        for entry in deployed:
            rows = [i for i, e in enumerate(entries) if e == entry and not unseen[i]]
            if rows:
                self._fill(answer, rows, self._model(index.seen_task.group(entry).model.url), x)
        unseen_rows = np.flatnonzero(unseen).tolist()
        if unseen_rows:
            self._fill(answer, unseen_rows, self._fallback(index, deployed, entries), x)
            self._save_unseen(data, unseen_rows, unseen_sample_postprocess)
        self._count(len(x), len(unseen_rows))
        result = np.asarray(answer) if answer else np.asarray([])
        if post_process is not None:
            result = post_process(result)
        tasks = [None if unseen[i] else entries[i] for i in range(len(x))]
        flags: Any = bool(unseen[0]) if len(x) == 1 else unseen.tolist()
        return result, flags, tasks

    def _fallback(self, index: KnowledgeIndex, deployed: set[str], entries: list) -> Any:
        if self.unseen_estimator is not None:
            return self.unseen_estimator
        # Upstream's fallback: the first task group answers what no task knows.
        first = next(g for g in index.seen_task.task_groups if g.entry in deployed)
        return self._model(first.model.url)

    @staticmethod
    def _fill(answer: list[Any], rows: list[int], model: Any, x: np.ndarray) -> None:
        predict = model.predict if hasattr(model, "predict") else model
        for row, value in zip(rows, np.asarray(predict(x[rows])), strict=True):
            answer[row] = value.item() if isinstance(value, np.generic) else value

    def serving_index(self) -> KnowledgeIndex:
        """The deployed index (``MODEL_URLS``), re-read when its file changes."""
        urls = (BaseConfig.model_urls or "").split(";")
        path = self._resolve(urls[0]) if urls[0] else str(self.output_url / "deploy")
        target = Path(path) / "index.json" if Path(path).is_dir() else Path(path)
        mtime = target.stat().st_mtime if target.exists() else -1.0
        with self._lock:
            if self._serving is None or self._serving[:2] != (str(target), mtime):
                index = KnowledgeIndex.load(target)
                self._serving = (str(target), mtime, index)
                self._references.clear()
                LOG.info(
                    "knowledge loaded", extra={"index": str(target), "tasks": len(index.deployed())}
                )
            return self._serving[2]

    def _allocate(
        self, index: KnowledgeIndex, data: BaseDataSource, required: bool = True
    ) -> tuple[np.ndarray, list[str | None] | None]:
        extractor = index.seen_task.extractor
        if self.task_allocation_config is not None:
            allocate = build(
                ClassType.STP,
                self.task_allocation_config,
                "",
                "task_allocation",
                task_extractor=extractor or {},
            )
        else:
            allocate = allocation_for(extractor)
        x, entries = allocate(data)
        if entries is None and required:
            references = self._references_of(index, {g.entry for g in index.seen_task.task_groups})
            if not references:
                raise ConfigError(
                    "the data lacks the task attribute and the index has no references"
                )
            entries = self._nearest(x, references, set(references))
        return x, entries

    def _references_of(self, index: KnowledgeIndex, entries: set[str]) -> dict[str, np.ndarray]:
        found = {}
        for group in index.seen_task.task_groups:
            if group.entry not in entries or not group.reference:
                continue
            if group.reference not in self._references:
                self._references[group.reference] = np.load(
                    self._resolve(group.reference), allow_pickle=False
                )
            found[group.entry] = self._references[group.reference]
        return found

    @staticmethod
    def _nearest(x: np.ndarray, references: dict[str, np.ndarray], entries: set[str]) -> list:
        names = [e for e in references if e in entries]
        if not names or x.dtype == object:
            return [names[0] if names else None] * len(x)
        distances = np.stack([knn_distance(x, {e: references[e]}, DEFAULT_K) for e in names])
        return [names[k] for k in distances.argmin(axis=0)]

    def _model(self, url: str) -> Any:
        path = self._resolve(url)
        key = (path, os.stat(path).st_mtime)
        model = self._models.get(key)
        if model is None:
            model = self._new_estimator()
            model.load(path)
            self._models[key] = model
        return model

    def _save_unseen(
        self, data: BaseDataSource, rows: list[int], postprocess: Callable[..., Any] | None
    ) -> None:
        directory = Path(
            Context.get_parameters("UT_SAVED_URL")
            or Context.get_parameters("unseen_save_url")
            or self.output_url / "unseen_samples"
        )
        directory.mkdir(parents=True, exist_ok=True)
        x = np.asarray(data.x, dtype=object)[rows]
        if postprocess is not None:
            postprocess(x, str(directory))
            return
        names = feature_names(data)
        if x.ndim == 1:  # txt datasets: sample paths, one per line (label them, then append)
            with (directory / "unseen_samples.txt").open("a", encoding="utf-8") as handle:
                handle.writelines(f"{sample}\n" for sample in x)
            return
        names = names or [f"x{i}" for i in range(x.shape[1])]
        target = directory / "unseen_samples.csv"
        new_file = not target.exists()
        with target.open("a", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            if new_file:
                writer.writerow([*names, Context.get_parameters("label", "label")])
            writer.writerows([*map(_cell, row), ""] for row in x)

    def _count(self, samples: int, unseen: int) -> None:
        with self._lock:
            self._counts["inferenceNumber"] += samples
            self._counts["unseenNumber"] += unseen
            self._counts["seenNumber"] += samples - unseen
            due = time.monotonic() - self._last_report >= float(
                Context.get_parameters("REPORT_INTERVAL_SECONDS", 10)
            )
        if due:
            self.report_inference_stats()

    @property
    def inference_counts(self) -> dict[str, int]:
        """Samples inferred, seen and unseen so far, being inferred (ready), failed (error)."""
        with self._lock:
            return dict(self._counts)

    def report_inference_stats(self) -> bool:
        """Send the inference counts to the LC now (also done every report interval)."""
        with self._lock:
            self._last_report = time.monotonic()
            info = TaskInfo.model_validate(
                {**self._counts, "startTime": self._started, "updateTime": utc_now()}
            )
        report = self.reporter.build(
            owner_kind=self.job_kind, kind="inference", status="running", task_info=info
        )
        return self.reporter.report(report)


def _cell(value: Any) -> str:
    if isinstance(value, float | np.floating) and np.isnan(value):
        return ""
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _classes(data: BaseDataSource) -> list[str]:
    if data.y is None:
        return []
    return sorted({_cell(v) for v in np.asarray(data.y).tolist()} - {""}, key=_class_key)


def _class_key(value: str) -> tuple[int, float | str]:
    try:
        return (0, float(value))
    except ValueError:
        return (1, value)


def _merge_extractors(old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    if not old or old.get("method") != new.get("method"):
        return new
    merged = dict(old)
    for key in ("values", "centroids"):
        if key in new:
            merged[key] = {**old.get(key, {}), **new[key]}
    return merged


def _scorers(metrics: Any, param: Any) -> dict[str, Callable[[Any, Any], float]]:
    from sklearn import metrics as sk_metrics

    metrics = metrics or Context.get_parameters("metrics") or "precision_score"
    if param is None:
        param = Context.get_parameters("metric_param")
    params = parse_param(param, "metric_param") if param else {"average": "micro"}
    if isinstance(metrics, str):
        metrics = [m.strip() for m in metrics.split(",") if m.strip()]
    if callable(metrics):
        metrics = {getattr(metrics, "__name__", "metric"): metrics}
    if isinstance(metrics, list | tuple):
        metrics = {m if isinstance(m, str) else m.__name__: m for m in metrics}
    scorers = {}
    for name, metric in metrics.items():
        function = getattr(sk_metrics, metric, None) if isinstance(metric, str) else metric
        if function is None:
            raise ConfigError(f"metrics: scikit-learn has no metric {metric!r}")
        # metric_param goes to every metric (a callable too, as upstream does), as far as its
        # signature takes it.
        try:
            accepted = inspect.signature(function).parameters
        except (TypeError, ValueError):
            accepted = {}
        kwargs = {k: v for k, v in params.items() if k in accepted}
        scorers[name] = lambda y, p, f=function, kw=kwargs: f(y, p, **kw)
    return scorers
