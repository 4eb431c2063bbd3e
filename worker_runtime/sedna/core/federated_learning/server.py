"""The aggregation worker: serves the weight exchange and closes rounds by policy."""

from __future__ import annotations

import logging
import threading
import time
from concurrent import futures
from typing import Any

import grpc
import numpy as np

from sedna.algorithms.aggregation import BaseAggregation
from sedna.algorithms.compression import BaseCodec, codec_names, get_codec
from sedna.common.report import LCReporter, utc_now
from sedna.core.federated_learning.buffers import BufferPool
from sedna.core.federated_learning.checkpoint import (
    CheckpointRecord,
    CheckpointStore,
    load_npz,
)
from sedna.core.federated_learning.coordinator import GlobalModel, RoundCoordinator, RoundStatus
from sedna.core.federated_learning.errors import JobFailed
from sedna.core.federated_learning.parameters import rule_from_parameters
from sedna.core.federated_learning.policy import RoundAction, RoundPolicy
from sedna.core.federated_learning.reporting import RoundReporter
from sedna.core.federated_learning.service import TokenInterceptor, WeightExchangeService
from sedna.core.federated_learning.settings import AggregatorSettings
from sedna.core.federated_learning.wire import MAX_MESSAGE_BYTES, NamedTensors

LOG = logging.getLogger("sedna.federated_learning.server")


def _receiving_codecs() -> dict[str, BaseCodec]:
    # Decoding never needs codec parameters (top-k sends its indices).
    return {name: get_codec(name) for name in codec_names()}


class AggregationServer:
    """Aggregation worker of a federated learning job.

    ``AggregationServer(aggregation="FedAvg", exit_round=..., participants_count=...).start()``
    serves until the last round's model has been handed out, as in Sedna. Unset arguments come
    from the environment (:meth:`AggregatorSettings.from_env`). The round policy is in
    :mod:`sedna.core.federated_learning.policy`; after each round the global model and the
    rule's state are checkpointed, so a restarted aggregator continues from the last round.
    """

    def __init__(
        self,
        aggregation: str | BaseAggregation | None = None,
        exit_round: int | None = None,
        participants_count: int | None = None,
        *,
        settings: AggregatorSettings | None = None,
        initial_weights: NamedTensors | None = None,
        reporter: LCReporter | None = None,
        **overrides: Any,
    ) -> None:
        # Sedna's AggregationServer arguments: ``host``/``http_port`` are the bind address;
        # ``ws_size`` capped its WebSocket frames, which streaming does not need.
        for upstream, here in (("host", "bind_host"), ("http_port", "bind_port")):
            if upstream in overrides:
                value = overrides.pop(upstream)
                if value is not None:
                    overrides[here] = value
        overrides.pop("ws_size", None)
        if settings is None:
            given = {
                "exit_round": exit_round,
                "participants": participants_count,
                "aggregation": aggregation if isinstance(aggregation, str) else None,
            }
            overrides.update({key: value for key, value in given.items() if value is not None})
            settings = AggregatorSettings.from_env(**overrides)
        self.settings = settings
        self.rule = (
            aggregation
            if isinstance(aggregation, BaseAggregation)
            else rule_from_parameters(settings.aggregation)
        )
        self.policy = RoundPolicy(
            participants=settings.participants,
            min_updates=settings.min_node_number,
            timeout_seconds=settings.round_timeout_seconds,
            max_wait_seconds=settings.max_wait_seconds,
            wait_after_min_seconds=settings.round_wait_after_min_seconds,
        )
        self.store = (
            CheckpointStore(settings.checkpoint_dir, settings.keep_models)
            if settings.checkpoint_dir is not None
            else None
        )
        self.reporter = RoundReporter("aggregation", reporter)
        latest = self._resume(initial_weights)
        self.codecs = _receiving_codecs()
        self.coordinator = RoundCoordinator(
            settings.job,
            settings.exit_round,
            self.codecs,
            latest=latest,
            max_update_bytes=int(settings.max_update_mb * (1 << 20)),
        )
        # Receive buffers reused across rounds: a round holds one per update plus the
        # published model's (built in place in an update's buffer); keep a spare set.
        self.buffers = BufferPool(keep=2 * settings.participants + 2)
        self._server: grpc.Server | None = None
        self._port: int | None = None
        self._loop: threading.Thread | None = None
        self._done = threading.Event()
        self._stop = threading.Event()
        # One closer of rounds at a time: the round loop (timeouts) or the push thread whose
        # update completes the round.
        self._closing = threading.Lock()
        self._error: BaseException | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The port the server listens on (useful with ``bind_port=0``)."""
        if self._port is None:
            raise RuntimeError("the aggregation server is not serving")
        return self._port

    def serve(self) -> AggregationServer:
        """Start the gRPC server and the round loop in the background; returns ``self``."""
        if self._server is not None:
            return self
        workers = max(8, 2 * self.settings.participants + 4)
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sedna-fl-rpc"),
            interceptors=[TokenInterceptor(self.settings.token.get_secret_value())],
            options=[
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                # A second aggregator on the same port must fail, not share it.
                ("grpc.so_reuseport", 0),
                ("grpc.keepalive_permit_without_calls", 1),
                ("grpc.http2.min_ping_interval_without_data_ms", 5000),
            ],
        )
        service = WeightExchangeService(
            self.coordinator,
            self.codecs,
            self.settings.chunk_bytes,
            self.settings.participants,
            self.buffers,
            on_update=self._close_round,
        )
        server.add_generic_rpc_handlers((service.handler(),))
        address = f"{self.settings.bind_host}:{self.settings.bind_port}"
        try:
            if self.settings.tls_cert is not None and self.settings.tls_key is not None:
                pair = (self.settings.tls_key.read_bytes(), self.settings.tls_cert.read_bytes())
                port = server.add_secure_port(address, grpc.ssl_server_credentials([pair]))
            else:
                port = server.add_insecure_port(address)
        except (RuntimeError, OSError) as error:
            raise OSError(f"cannot listen on {address}: {error}") from error
        if port == 0:
            raise OSError(f"cannot listen on {address}")
        server.start()
        self._server, self._port = server, port
        LOG.info(
            "aggregation server listening",
            extra={
                "address": f"{self.settings.bind_host}:{port}",
                "tls": self.settings.tls_cert is not None,
                "job": self.settings.job,
                "aggregation": self.rule.name,
                "participants": self.settings.participants,
                "exit_round": self.settings.exit_round,
                "open_round": self.coordinator.status().open_round,
            },
        )
        self._loop = threading.Thread(target=self._run, name="sedna-fl-rounds", daemon=True)
        self._loop.start()
        return self

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job finished or failed (``True``) or ``timeout`` passed."""
        return self._done.wait(timeout)

    def stop(self, grace: float = 1.0) -> None:
        """Stop serving (in-flight calls get ``grace`` seconds)."""
        self._stop.set()
        with self.coordinator.condition:
            self.coordinator.condition.notify_all()
        if self._server is not None:
            self._server.stop(grace).wait()
        if self._loop is not None:
            self._loop.join(timeout=10)
        self.reporter.close()

    def start(self) -> GlobalModel:
        """Serve the whole job (blocking); the final global model. :class:`JobFailed` if the
        job failed."""
        self.serve()
        try:
            self.wait()
            if self._error is not None:
                # Keep answering for a while so the training workers learn why (ABORTED).
                self._stop.wait(self.settings.exit_grace_seconds)
        finally:
            self.stop()
        if self._error is not None:
            raise JobFailed(str(self._error)) from self._error
        final = self.coordinator.latest
        assert final is not None
        return final

    def status(self) -> RoundStatus:
        """Snapshot of the round state."""
        return self.coordinator.status()

    # -- rounds ------------------------------------------------------------------------------

    def _resume(self, initial_weights: NamedTensors | None) -> GlobalModel | None:
        if self.store is not None:
            loaded = self.store.load()
            if loaded is not None:
                record, tensors, state = loaded
                if record.job != self.settings.job:
                    LOG.warning(
                        "checkpoint belongs to another job; starting fresh",
                        extra={
                            "checkpoint_job": record.job,
                            "directory": str(self.store.directory),
                        },
                    )
                else:
                    self.rule.load_state(state)
                    LOG.info(
                        "resuming from checkpoint at round %d",
                        record.round,
                        extra={"directory": str(self.store.directory)},
                    )
                    return GlobalModel(
                        round=record.round,
                        names=tuple(name for name, _ in tensors),
                        tensors=tuple(tensor for _, tensor in tensors),
                        sample_counts=record.sample_counts,
                    )
        if initial_weights is None and self.settings.initial_model_path is not None:
            initial_weights = load_npz(self.settings.initial_model_path)
            LOG.info(
                "starting from the pretrained model",
                extra={"path": str(self.settings.initial_model_path)},
            )
        if initial_weights is not None:
            # Round 0 is the starting point every worker pulls before its first round.
            return GlobalModel(
                round=0,
                names=tuple(name for name, _ in initial_weights),
                tensors=tuple(np.asarray(tensor) for _, tensor in initial_weights),
            )
        return None

    def _policy_inputs(self, status: RoundStatus) -> tuple[int, float, float | None]:
        """Updates held, seconds open, when the minimum was reached: what the policy reads."""
        return len(status.updates), status.seconds_open, status.reached(self.policy.min_updates)

    def _decide(self, status: RoundStatus) -> RoundAction:
        return self.policy.decide(*self._policy_inputs(status))

    def _over(self, status: RoundStatus) -> bool:
        return status.finished or status.failure is not None or self._stop.is_set()

    def _next_action(self) -> tuple[RoundAction, RoundStatus]:
        condition = self.coordinator.condition
        with condition:
            while True:
                status = self.coordinator.status()
                if self._over(status):
                    return RoundAction.WAIT, status
                action = self._decide(status)
                if action is not RoundAction.WAIT:
                    return action, status
                pause = self.policy.seconds_until_change(*self._policy_inputs(status))
                condition.wait(min(max(pause, 0.01), 1.0))

    def _close_round(self) -> None:
        """Aggregate the open round if the policy says so now; a failure fails the job."""
        with self._closing:
            status = self.coordinator.status()
            if self._over(status) or status.aggregating:
                return
            if self._decide(status) is not RoundAction.AGGREGATE:
                return
            try:
                self._aggregate_round()
            except BaseException as error:  # the job fails; the process keeps answering why
                self._fail(error)

    def _fail(self, error: BaseException) -> None:
        if self._error is not None:
            return  # the first failure is the one to report
        self._error = error
        LOG.error("federated job failed", exc_info=error)
        self.coordinator.fail(str(error))
        self.reporter.report("failed", {"currentRound": self.status().latest_round})

    def _run(self) -> None:
        try:
            while True:
                action, status = self._next_action()
                if self._over(status):
                    break
                if action is RoundAction.FAIL:
                    raise JobFailed(self.policy.failure_message(len(status.updates)))
                self._close_round()
            if not self._stop.is_set() and self._error is None:
                self._finish()
        except BaseException as error:  # the job fails; the process keeps answering why
            self._fail(error)
        finally:
            self._done.set()

    def _aggregate_round(self) -> None:
        started = time.perf_counter()
        round_number, updates, names = self.coordinator.begin_aggregation()
        nodes = [{**node, "lastRound": round_number} for node in self.coordinator.contributors()]
        previous = self.coordinator.latest
        self.rule.configure_round(
            round_number, list(previous.tensors) if previous is not None else None
        )
        tensors = self.rule.aggregate(updates)
        model = GlobalModel(
            round=round_number,
            names=tuple(names),
            tensors=tuple(tensors),
            sample_counts={update.worker: update.num_samples for update in updates},
        )
        if self.store is not None:
            self.store.save(
                CheckpointRecord(
                    job=self.settings.job,
                    round=round_number,
                    exit_round=self.settings.exit_round,
                    model_file="",
                    state_file="",
                    participants=model.participants,
                    total_samples=model.total_samples,
                    sample_counts=dict(model.sample_counts),
                    updated=utc_now(),
                ),
                model.named(),
                self.rule.state(),
            )
        self.coordinator.publish(model)
        LOG.info(
            "round %d aggregated",
            round_number,
            extra={
                "updates": len(updates),
                "samples": model.total_samples,
                "seconds": round(time.perf_counter() - started, 3),
            },
        )
        self.reporter.report(
            "running",
            {
                "currentRound": round_number,
                # One aggregation closes each round, checkpoints carry them across restarts.
                "aggregationCount": round_number,
                "participants": len(updates),
                "nodes": nodes,
                "sampleCounts": _sample_counts(nodes),
                "totalSamples": model.total_samples,
            },
        )

    def _finish(self) -> None:
        final = self.coordinator.latest
        assert final is not None
        # The model file at MODEL_URL is the training workers' (their estimator's own save);
        # the aggregator's global models stay in its checkpoints.
        # Only the totals: the GM merges a worker's reports key by key, so the last round's
        # nodes and sample counts stay in its record (gm.records.merge_message).
        self.reporter.report(
            "completed",
            {
                "currentRound": final.round,
                "aggregationCount": final.round,
                "totalSamples": final.total_samples,
            },
        )
        LOG.info("federated job finished", extra={"round": final.round})
        # Serve the final model until every worker of the last round has it (or grace ends).
        expected = set(final.sample_counts)
        deadline = time.monotonic() + self.settings.exit_grace_seconds
        condition = self.coordinator.condition
        with condition:
            while not self._stop.is_set() and time.monotonic() < deadline:
                if expected <= self.coordinator.final_pulls():
                    break
                condition.wait(min(1.0, max(0.01, deadline - time.monotonic())))


def _sample_counts(nodes: list[dict[str, Any]]) -> dict[str, Any]:
    """``{node: numberOfSamples}`` of a round's contributors."""
    return {str(n["nodeName"]): n["numberOfSamples"] for n in nodes}
