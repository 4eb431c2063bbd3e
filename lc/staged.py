"""The node side of staged jobs (incremental and lifelong learning).

The GM sends a staged job to its nodes with a :class:`apis.stages.StagedDirective` annotation
(round, stage, state, the deploy to carry out). On each tick this module:

* on the dataset's node: reads the new index lines and splits them (always, so no sample is
  missed during a round); while the job is (Train, Waiting) it checks the train trigger every
  ``checkPeriodSeconds`` on ``num_of_samples`` (the train samples not yet in a round) and, when
  it fires, writes the next round's files and reports (Train, Ready) upstream;
* on the deploy node: carries out the directive's deploy once (cold: replace the deploy
  Model's file atomically; hot: write the model config the inference worker polls) and
  reports (Deploy, Running), or (Deploy, Failed) with the reason; with hot update it also
  mirrors the served model to the deploy Model's file, so a restart serves it too.

What it did is persisted under the LC's data directory, so a restarted LC neither cuts a round
twice nor deploys twice; it only re-sends the report, which the GM ignores if it had it.
"""

from __future__ import annotations

import json
import logging
import shutil
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from apis.kinds import JobDataset, Trigger
from apis.stages import (
    STAGED_ANNOTATION,
    DeployAction,
    RoundData,
    Stage,
    StagedDirective,
    StageMessage,
    StageModel,
    StageState,
)
from lc.datasets import CursorStore, RoundSplitter, index_path, write_atomically
from lc.triggers import Clock, SystemClock, TriggerCheck

log = logging.getLogger(__name__)

#: ``send(kind, namespace, name, payload)``: put an upstream message in the outbox.
Send = Callable[[str, str, str, dict[str, Any]], None]

#: How often a report the GM has not acted on yet is sent again.
RESEND_SECONDS = 10.0


def directive_of(obj: Mapping[str, Any]) -> StagedDirective | None:
    """The staged directive a job object carries, None when it has none (or a bad one)."""
    text = ((obj.get("metadata") or {}).get("annotations") or {}).get(STAGED_ANNOTATION)
    if not text:
        return None
    try:
        return StagedDirective.model_validate_json(text)
    except ValidationError as exc:
        log.error("bad staged directive: %s", exc, extra={"job": obj["metadata"].get("name")})
        return None


def copy_atomically(source: Path, target: Path) -> None:
    """Replace ``target`` by a copy of ``source``; a reader sees the old or the new file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.copy.tmp")
    shutil.copyfile(source, tmp)
    tmp.replace(target)


@dataclass
class _Job:
    """One staged job this node takes part in."""

    kind: str
    namespace: str
    name: str
    directive: StagedDirective
    splitter: RoundSplitter | None = None
    check: TriggerCheck | None = None
    last_sent: dict[str, float] = field(default_factory=dict)

    def labels(self, node: str, **extra: object) -> dict[str, object]:
        """The searchable log labels of this job on ``node`` (``sedna_cli.logs``) and ``extra``."""
        return {
            "job": self.name,
            "kind": self.kind,
            "namespace": self.namespace,
            "node": node,
            **extra,
        }


class StagedJobs:
    """The node's share of every staged job: dataset side and deploy side."""

    def __init__(self, node: str, data_dir: Path, send: Send, clock: Clock | None = None) -> None:
        self.node = node
        self.directory = Path(data_dir) / "staged"
        self.store = CursorStore(self.directory)
        self.send = send
        self.clock = clock or SystemClock()
        self._jobs: dict[str, _Job] = {}
        self._lock = threading.Lock()

    def update(self, resources: Mapping[str, Mapping[str, Any]]) -> None:
        """Follow the node's desired resources (``Kind/namespace/name`` -> object)."""
        wanted: dict[str, tuple[str, Mapping[str, Any], StagedDirective]] = {}
        for key, obj in resources.items():
            directive = directive_of(obj)
            if directive is not None:
                wanted[key] = (key.split("/", 1)[0], obj, directive)
        with self._lock:
            for key in set(self._jobs) - set(wanted):
                del self._jobs[key]
            for key, (kind, obj, directive) in wanted.items():
                job = self._jobs.get(key)
                if job is None:
                    meta = obj["metadata"]
                    job = _Job(kind, meta.get("namespace") or "default", meta["name"], directive)
                    self._jobs[key] = job
                job.directive = directive
                self._attach_dataset(job, obj, resources)

    def _attach_dataset(
        self, job: _Job, obj: Mapping[str, Any], resources: Mapping[str, Mapping[str, Any]]
    ) -> None:
        spec = obj.get("spec") or {}
        try:
            dataset = JobDataset.model_validate(spec.get("dataset") or {})
            trigger = Trigger.model_validate((spec.get("trainSpec") or {}).get("trigger") or {})
        except ValidationError as exc:
            log.error("staged job spec not usable: %s", exc, extra=job.labels(self.node))
            return
        ds = resources.get(f"Dataset/{job.namespace}/{dataset.name}")
        ds_spec = (ds or {}).get("spec") or {}
        path = index_path(str(ds_spec.get("url", "")))
        if ds is None or ds_spec.get("nodeName") != self.node or path is None:
            job.splitter = None
            return
        output = Path(str(spec.get("outputDir") or self.directory / job.namespace / job.name))
        same = job.splitter is not None and job.splitter.index == path
        if not same:
            job.splitter = RoundSplitter(
                f"{job.namespace}/{job.name}",
                path,
                str(ds_spec.get("format", "txt")),
                dataset.train_prob,
                output,
                self.store,
            )
        if job.check is None or job.check.trigger != trigger:
            job.check = TriggerCheck(trigger, self.clock)

    def jobs(self) -> list[str]:
        """The keys of the staged jobs followed."""
        with self._lock:
            return sorted(self._jobs)

    def tick(self) -> None:
        """One pass over every job (call it about once a second)."""
        with self._lock:
            jobs = list(self._jobs.values())
        for job in jobs:
            try:
                if job.splitter is not None:
                    self._dataset_side(job)
                if job.directive.deploy_node == self.node:
                    self._deploy_side(job)
            except Exception:
                log.exception("staged job tick failed", extra=job.labels(self.node))

    def __len__(self) -> int:
        """How many staged jobs the node holds."""
        with self._lock:
            return len(self._jobs)

    def seconds_until_due(self) -> float:
        """How long the next tick may wait without delaying a trigger check."""
        with self._lock:
            checks = [j.check for j in self._jobs.values() if j.check is not None]
        return min((c.seconds_until_due() for c in checks), default=1.0)

    # -- dataset side -------------------------------------------------------------------------

    def _dataset_side(self, job: _Job) -> None:
        assert job.splitter is not None and job.check is not None
        splitter, directive = job.splitter, job.directive
        try:
            pending = splitter.poll()
        except OSError as exc:
            log.warning("cannot read the dataset index: %s", exc, extra=job.labels(self.node))
            return
        if directive.stage is not Stage.TRAIN or directive.state is not StageState.WAITING:
            return
        following = directive.round + 1
        if splitter.cursor.last_round == following:  # cut, but the GM has not seen it yet
            self._report_cut(job, splitter.files(following).__dict__, resend=True)
            return
        result = job.check.poll({"num_of_samples": pending})
        if result is None or not result.fired:
            return
        files = splitter.cut(following)
        log.info(
            "train trigger fired: %s",
            result.reason,
            extra=job.labels(self.node, round=following, samples=files.train),
        )
        self._report_cut(job, files.__dict__, resend=False, reason=result.reason)

    def _report_cut(
        self, job: _Job, files: dict[str, Any], *, resend: bool, reason: str | None = None
    ) -> None:
        data = RoundData(
            train=files["train"],
            eval=files["eval"],
            train_url=files["train_url"],
            eval_url=files["eval_url"],
        )
        message = StageMessage(
            stage=Stage.TRAIN,
            state=StageState.READY,
            round=files["round"],
            data=data,
            message=f"round {files['round']}: {reason}" if reason else None,
        )
        self._send(job, "cut", message, resend)

    def _send(self, job: _Job, what: str, message: StageMessage, resend: bool) -> None:
        now = self.clock.monotonic()
        if resend and now - job.last_sent.get(what, -RESEND_SECONDS) < RESEND_SECONDS:
            return
        job.last_sent[what] = now
        self.send(job.kind, job.namespace, job.name, message.to_api())

    # -- deploy side --------------------------------------------------------------------------

    def _deploy_marker(self, job: _Job) -> Path:
        return self.directory / f"{job.namespace}__{job.name}.deploy.json"

    def _deploy_state(self, job: _Job) -> dict[str, Any]:
        try:
            return json.loads(self._deploy_marker(job).read_text())
        except (FileNotFoundError, ValueError):
            return {}

    def _save_deploy_state(self, job: _Job, state: dict[str, Any]) -> None:
        write_atomically(self._deploy_marker(job), json.dumps(state).encode())

    def _deploy_side(self, job: _Job) -> None:
        directive, state = job.directive, self._deploy_state(job)
        action = directive.deploy
        starting = directive.stage is Stage.DEPLOY and directive.state is StageState.STARTING
        if action is not None and starting and action.round == directive.round:
            if state.get("round") != action.round:
                state = {**state, **self._deploy(action, job)}
                self._save_deploy_state(job, state)
                resend = False
            else:
                resend = True
            failed = state.get("error")
            message = StageMessage(
                stage=Stage.DEPLOY,
                state=StageState.FAILED if failed else StageState.RUNNING,
                round=action.round,
                message=failed or state.get("message"),
            )
            self._send(job, "deploy", message, resend)
        served, target = directive.served_model_url, directive.target_url
        if served and target and state.get("mirrored") != served and served != target:
            try:
                copy_atomically(Path(served), Path(target))
            except OSError as exc:
                log.warning("cannot mirror the served model: %s", exc, extra=job.labels(self.node))
                return
            self._save_deploy_state(job, {**state, "mirrored": served})

    def _deploy(self, action: DeployAction, job: _Job) -> dict[str, Any]:
        """Carry out ``action``; what to remember (round, and the error or what was done)."""
        source = Path(action.model_url)
        if not source.is_file():
            return {"round": action.round, "error": f"the trained model {source} does not exist"}
        try:
            if action.hot_update_config:
                stamp = datetime.now(UTC).isoformat()
                config = {
                    "model_config": {
                        "model_path": str(source),
                        "model_update_time": f"{stamp} round {action.round}",
                    }
                }
                body = json.dumps(config, indent=1).encode()
                write_atomically(Path(action.hot_update_config), body)
                done = f"model config {action.hot_update_config} names {source}"
            else:
                copy_atomically(source, Path(action.target_url))
                done = f"{action.target_url} replaced by {source}"
        except OSError as exc:
            return {"round": action.round, "error": f"cannot put the model in place: {exc}"}
        log.info("deployed: %s", done, extra=job.labels(self.node, round=action.round))
        return {"round": action.round, "message": done, "error": None}

    # -- the inference worker's reload reports ----------------------------------------------

    def on_deploy_report(
        self, namespace: str, job_name: str, status: str, model_urls: list[str], message: str | None
    ) -> bool:
        """Relay an inference worker's ``kind: deploy`` report (hot update: it loaded the new
        model, or failed to) as the Deploy stage's outcome of the current round; True if the
        report belonged to a staged job in its Deploy stage."""
        with self._lock:
            job = next(
                (j for j in self._jobs.values() if (j.namespace, j.name) == (namespace, job_name)),
                None,
            )
        if job is None or job.directive.stage is not Stage.DEPLOY or job.directive.round < 1:
            return False
        state = StageState.COMPLETED if status == "completed" else StageState.FAILED
        outcome = StageMessage(
            stage=Stage.DEPLOY,
            state=state,
            round=job.directive.round,
            models=[StageModel(url=url) for url in model_urls] or None,
            message=message if state is StageState.FAILED else "the inference worker loaded it",
        )
        self.send(job.kind, job.namespace, job.name, outcome.to_api())
        return True
