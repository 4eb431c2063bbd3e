"""The training worker: local epochs, push, pull the global model, repeat until the job ends."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from sedna.algorithms.aggregation import BaseAggregation, ProximalTerm
from sedna.algorithms.compression import BaseCodec, CodecError, ErrorFeedback, get_codec
from sedna.backend import set_backend
from sedna.backend.base import parse_kwargs
from sedna.common.config import BaseConfig
from sedna.common.errors import ConfigError
from sedna.common.estimator import resolve_estimator
from sedna.common.report import ReportedModel
from sedna.core.base import resolve_post_process
from sedna.core.federated_learning.checkpoint import save_npz
from sedna.core.federated_learning.client import AggregationClient, PulledModel, RetryPolicy
from sedna.core.federated_learning.errors import RoundNotOpen
from sedna.core.federated_learning.parameters import rule_from_parameters
from sedna.core.federated_learning.reporting import RoundReporter
from sedna.core.federated_learning.settings import TrainerSettings
from sedna.core.federated_learning.wire import NamedTensors

LOG = logging.getLogger("sedna.federated_learning.trainer")

ModelWeights = Sequence[np.ndarray] | Mapping[str, np.ndarray]


@runtime_checkable
class FederatedEstimator(Protocol):
    """What federated training needs of an estimator.

    ``get_weights`` returns a list of arrays (Keras style) or a mapping of name to array
    (PyTorch ``state_dict`` style); ``set_weights`` takes the same structure back. ``train``
    receives ``proximal=ProximalTerm`` in FedProx jobs and may return a dict of metrics.
    """

    def get_weights(self) -> ModelWeights:
        """The model's tensors."""

    def set_weights(self, weights: ModelWeights) -> None:
        """Replace the model's tensors."""

    def train(self, train_data: Any, valid_data: Any = None, **kwargs: Any) -> Any:
        """Local training on ``train_data``."""


def num_samples(data: Any) -> int:
    """How many samples ``data`` holds (``num_examples()``, ``len()`` or ``len(data.x)``)."""
    counter = getattr(data, "num_examples", None)
    if callable(counter):
        return int(counter())
    try:
        return len(data)
    except TypeError:
        pass
    features = getattr(data, "x", None)
    if features is not None:
        return len(features)
    raise ConfigError(
        f"cannot count the samples of {type(data).__name__}; give it num_examples() or len()"
    )


def _to_named(weights: ModelWeights, names: Sequence[str] = ()) -> NamedTensors:
    """Named tensors of the estimator's weights. A list takes the names of the global model it
    was given (e.g. a pretrained model's) when they fit, else ``layer_0000``, ``layer_0001``..."""
    if isinstance(weights, Mapping):
        return [(str(name), np.asarray(value)) for name, value in weights.items()]
    if len(names) != len(weights):
        names = [f"layer_{index:04d}" for index in range(len(weights))]
    return [(name, np.asarray(value)) for name, value in zip(names, weights, strict=True)]


def _from_named(named: NamedTensors, like: ModelWeights) -> ModelWeights:
    if isinstance(like, Mapping):
        return {name: tensor for name, tensor in named}
    return [tensor for _, tensor in named]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | np.number) and not isinstance(value, bool | np.bool_)


def _metrics(result: Any) -> dict[str, float]:
    """The scalar metrics of ``estimator.train``'s result (what the aggregator is told)."""
    if not isinstance(result, Mapping):
        return {}
    return {str(key): float(value) for key, value in result.items() if _is_number(value)}


def report_metrics(result: Any) -> dict[str, float | str | list[float]]:
    """The metrics of ``estimator.train``'s result as reported: numbers, lists of numbers
    (e.g. a Keras history, one value per epoch) and strings; anything else is left out."""
    if not isinstance(result, Mapping):
        return {}
    metrics: dict[str, float | str | list[float]] = {}
    for key, value in result.items():
        if _is_number(value):
            metrics[str(key)] = float(value)
        elif isinstance(value, str):
            metrics[str(key)] = value
        elif isinstance(value, list | tuple | np.ndarray):
            values = list(np.asarray(value).ravel()) if isinstance(value, np.ndarray) else value
            if values and all(_is_number(item) for item in values):
                metrics[str(key)] = [float(item) for item in values]
    return metrics


@dataclass
class TrainingSummary:
    """What a training worker did in the job."""

    rounds_trained: list[int] = field(default_factory=list)
    final_round: int = 0
    bytes_pushed: int = 0
    bytes_pulled: int = 0
    refused_pushes: int = 0
    last_metrics: dict[str, float] = field(default_factory=dict)
    model_path: str | None = None
    output: Any = None


class FederatedLearning:
    """Federated training of ``estimator`` with the aggregation worker of the job.

    ``FederatedLearning(estimator, aggregation="FedAvg").train(train_data)`` trains locally,
    pushes the weights (encoded by the job parameter ``compression``), pulls the global model,
    sets it and repeats until the aggregator says the job is over. A worker that starts late,
    restarts, or misses a round joins at the aggregator's current round.
    """

    def __init__(
        self,
        estimator: FederatedEstimator | type,
        aggregation: str | BaseAggregation = "FedAvg",
        *,
        settings: TrainerSettings | None = None,
        **overrides: Any,
    ) -> None:
        self.estimator = resolve_estimator(estimator, ("train", "get_weights", "set_weights"))
        self.settings = settings or TrainerSettings.from_env(**overrides)
        self.rule = (
            aggregation
            if isinstance(aggregation, BaseAggregation)
            else rule_from_parameters(aggregation)
        )
        self.codec = self._codec()
        self.feedback = ErrorFeedback(self.codec) if self.codec.error_feedback else None
        self.reporter = RoundReporter("train")
        # Upstream's wrapper of the estimator: where and how the round's model is saved.
        self.backend = set_backend(self.estimator)

    def _codec(self) -> BaseCodec:
        name = self.settings.compression
        try:
            return (
                get_codec(name, ratio=self.settings.topk_ratio)
                if name == "topk"
                else get_codec(name)
            )
        except CodecError as error:
            raise ConfigError(f"compression: {error}") from None

    def _client(self) -> AggregationClient:
        return AggregationClient(
            self.settings.address,
            self.settings.token.get_secret_value(),
            self.settings.job,
            self.settings.worker,
            node=self.settings.node,
            chunk_bytes=self.settings.chunk_bytes,
            retry=RetryPolicy(budget_seconds=self.settings.retry_seconds),
            tls_ca=self.settings.tls_ca.read_bytes() if self.settings.tls_ca else None,
        )

    def _train_kwargs(self, global_weights: ModelWeights, kwargs: dict[str, Any]) -> dict[str, Any]:
        accepted = parse_kwargs(self.estimator.train, **kwargs)
        mu = self.rule.client_config().get("mu")
        if mu is None:
            return accepted
        return {**accepted, "proximal": ProximalTerm(mu, global_weights)}

    def _save_model(self, tensors: NamedTensors) -> str | None:
        """Write the global model at ``MODEL_URL`` (nothing when unset): with the estimator's
        own ``save`` when it has one, so its ``load`` reads it back; else as npz. Written to
        a temporary file and renamed, so readers (and other trainers writing the same
        model on a shared disk) never see a torn file."""
        if not BaseConfig.model_url or self.backend is None:
            return None
        if callable(getattr(self.estimator, "save", None)):
            return self.backend.save()
        path = self.backend.model_path("global_model.npz")
        save_npz(Path(path), tensors)
        return path

    def _round_models(self, tensors: NamedTensors, result: Any) -> list[ReportedModel] | None:
        path = self._save_model(tensors)
        if path is None or self.backend is None:
            return None
        entry = self.backend.model_info(path, relpath=os.environ.get("DATA_PATH_PREFIX"))[0]
        return [
            ReportedModel(
                format=entry["format"] or "unknown",
                url=entry["url"],
                metrics=report_metrics(result) or None,
            )
        ]

    def train(
        self, train_data: Any, valid_data: Any = None, post_process: Any = None, **kwargs: Any
    ) -> TrainingSummary:
        """Run federated rounds until the job ends.

        ``kwargs`` go to ``estimator.train`` (those it does not accept are left out, as
        upstream). After each round the global model is saved at ``MODEL_URL`` by the
        estimator's own ``save`` and reported with the round's metrics. ``post_process`` (a
        callable or a registered callback name) is applied to the trained estimator; its
        result is ``summary.output``.
        """
        callback = resolve_post_process(post_process)
        try:
            summary = self._train(train_data, valid_data, kwargs)
            if callback is not None:
                summary.output = callback(self.estimator)
            return summary
        except BaseException as error:
            self.reporter.report("failed", {"reason": str(error)})
            raise
        finally:
            self.reporter.close()

    def inference(self, data: Any = None, post_process: Any = None, **kwargs: Any) -> Any:
        """``estimator.predict(data)`` (through ``post_process`` when given), as upstream's
        ``JobBase.inference``."""
        predict = self.estimator.predict
        result = predict(data, **parse_kwargs(predict, **kwargs))
        callback = resolve_post_process(post_process)
        return callback(result) if callback else result

    def _train(self, train_data: Any, valid_data: Any, kwargs: dict[str, Any]) -> TrainingSummary:
        samples = num_samples(train_data)
        if samples <= 0:
            raise ConfigError("the training dataset is empty")
        summary = TrainingSummary()
        like = self.estimator.get_weights()
        models: list[ReportedModel] | None = None
        with self._client() as client:
            state = client.pull(0)
            base = self._adopt(state, like)
            while not state.exit:
                round_number = state.next_round
                start_weights = self.estimator.get_weights()
                result = self.estimator.train(
                    train_data, valid_data=valid_data, **self._train_kwargs(start_weights, kwargs)
                )
                summary.last_metrics = _metrics(result)
                names = [name for name, _ in base] if base else []
                local = _to_named(self.estimator.get_weights(), names)
                prepared = client.prepare_push(
                    round_number,
                    local,
                    samples,
                    codec=self.codec,
                    base=base,
                    base_round=state.round if base else 0,
                    feedback=self.feedback,
                    aggregation=self.rule.name,
                    metrics=summary.last_metrics,
                )
                started = time.monotonic()
                try:
                    client.send(prepared)
                    state = client.wait_for_round(
                        round_number, timeout=self.settings.round_wait_seconds, resend=prepared
                    )
                except RoundNotOpen as refusal:
                    # Too late for this round: take the newest global model and rejoin.
                    if self.feedback is not None:
                        self.feedback.rollback()
                    summary.refused_pushes += 1
                    LOG.info("rejoining at the current round: %s", refusal)
                    state = client.wait_for_round(
                        round_number, timeout=self.settings.round_wait_seconds
                    )
                    base = self._adopt(state, like)
                    summary.bytes_pulled += state.received_bytes
                    continue
                summary.rounds_trained.append(round_number)
                summary.bytes_pushed += prepared.size
                summary.bytes_pulled += state.received_bytes
                base = self._adopt(state, like)
                models = self._round_models(state.tensors, result) or models
                summary.model_path = models[0].url if models else None
                LOG.info(
                    "round %d done",
                    round_number,
                    extra={
                        "global_round": state.round,
                        "participants": state.participants,
                        "pushed_bytes": prepared.size,
                        "wait_seconds": round(time.monotonic() - started, 3),
                    },
                )
                self.reporter.report(
                    "running",
                    {"currentRound": state.round, "sampleCount": samples, **summary.last_metrics},
                    models,
                )
            summary.final_round = state.round
        self.reporter.report(
            "completed", {"currentRound": state.round, "sampleCount": samples}, models
        )
        return summary

    def _adopt(self, state: PulledModel, like: ModelWeights) -> NamedTensors | None:
        """Load the pulled global model into the estimator; it becomes the base of deltas."""
        if not state.tensors:
            return None
        self.estimator.set_weights(_from_named(state.tensors, like))
        return state.tensors
