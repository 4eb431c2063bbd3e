"""The edge worker: infer locally, send hard examples to the cloud, fall back when it fails."""

from __future__ import annotations

import atexit
import os
import sys
import threading
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import Any, NamedTuple

import numpy as np

from sedna.algorithms.hard_example_mining import BaseFilter, hem_config_from_env, resolve_hem
from sedna.common.config import BaseConfig
from sedna.common.errors import CloudUnavailableError, ConfigError, InvalidInputError
from sedna.common.estimator import resolve_estimator
from sedna.common.log import ensure_logging, get_logger
from sedna.common.report import LCReporter, WorkerStatus
from sedna.core.joint_inference.breaker import CircuitBreaker
from sedna.core.joint_inference.client import CloudClient
from sedna.core.joint_inference.service import parse_port
from sedna.core.joint_inference.stats import InferenceStats, StatsCounter

LOG = get_logger("joint_inference.edge")

OWNER_KIND = "jointinferenceservice"
WORKER_KIND = "inference"
DEFAULT_REPORT_INTERVAL_SECONDS = 10.0
# MINING_MODE values (upstream's): mine the edge result (default), or mine the sample first.
MINING_AFTER = "inference-then-mining"
MINING_FIRST = "mining-then-inference"


class InferenceResult(NamedTuple):
    """What :meth:`JointInference.inference` returns (unpacks like Sedna's 4-tuple)."""

    is_hard: bool
    final_result: Any
    edge_result: Any
    cloud_result: Any


class JointInference:
    """Edge side of joint inference.

    Each sample is predicted by the small ``estimator``; when ``hard_example_mining`` judges
    the result hard, the sample goes to the cloud worker (``BIG_MODEL_IP:BIG_MODEL_PORT``) and
    the cloud's answer becomes the final result. If the cloud is down, slower than
    ``timeout`` or failing, the edge result is used and counted in ``cloud_failures``; a
    circuit breaker then skips the cloud for a growing delay before trying it again.

    ``hard_example_mining`` is an algorithm, its name, Sedna's ``{"method", "param"}`` dict,
    or ``None`` (use ``HEM_NAME``/``HEM_PARAMETERS``; no mining when unset). The counters are
    reported to the LC every ``report_interval`` seconds (``REPORT_INTERVAL_SECONDS``, default
    10) and once more by :meth:`close` (also called at interpreter exit).
    """

    def __init__(
        self,
        estimator: Any,
        hard_example_mining: BaseFilter | str | dict[str, Any] | None = None,
        *,
        model_url: str | None = None,
        cloud_host: str | None = None,
        cloud_port: int | None = None,
        timeout: float = 5.0,
        breaker: CircuitBreaker | None = None,
        reporter: LCReporter | None = None,
        report_interval: float | None = None,
    ) -> None:
        ensure_logging()
        self.estimator = resolve_estimator(estimator)
        url = model_url if model_url is not None else BaseConfig.model_url
        if url:
            resolve_estimator(self.estimator, ("predict", "load")).load(url)
            LOG.info("edge model loaded", extra={"model_url": url})
        self.hard_example_mining = resolve_hem(hard_example_mining)
        self.mining_mode = _mining_mode()
        self.cloud = self._cloud_client(cloud_host, cloud_port, timeout)
        self.breaker = breaker or CircuitBreaker()
        self.reporter = reporter or LCReporter.from_env()
        self._counter = StatsCounter()
        self._closed = False
        self._reported_version = -1
        self._stop = threading.Event()
        self._report_thread = self._start_reporting(_report_interval(report_interval))
        _close_at_exit(self)
        LOG.info(
            "joint inference ready",
            extra={
                "hard_example_mining": repr(self.hard_example_mining),
                "cloud": self.cloud.address if self.cloud else None,
            },
        )

    @staticmethod
    def get_hem_algorithm_from_config(**param: Any) -> dict[str, Any]:
        """Sedna's ``{"method": HEM_NAME, "param": {...}}``; ``HEM_PARAMETERS`` override
        ``param``. Pass the result as ``hard_example_mining``."""
        return hem_config_from_env(**param)

    @property
    def stats(self) -> InferenceStats:
        """The counters so far."""
        return self._counter.snapshot()[0]

    def inference(
        self, data: Any, post_process: Callable[[Any], Any] | None = None, **kwargs: Any
    ) -> InferenceResult:
        """``(is_hard, final_result, edge_result, cloud_result)`` for one sample.

        ``kwargs`` go to the edge estimator's ``predict``; ``post_process`` (if given) turns
        the edge prediction into what mining judges and the caller gets. ``cloud_result`` is
        ``None`` when the sample was easy or the cloud could not answer.
        """
        if self.mining_mode == MINING_FIRST:
            return self._mine_then_infer(data, post_process, kwargs)
        edge_result = self.estimator.predict(data, **kwargs)
        if post_process is not None:
            edge_result = post_process(edge_result)
        is_hard = bool(self.hard_example_mining(edge_result)) if self.hard_example_mining else False
        self._counter.add(samples=1, hard=int(is_hard))
        if not is_hard:
            return InferenceResult(False, edge_result, edge_result, None)
        answered, cloud_result = self._ask_cloud(data, batch=False)
        self._counter.add(cloud_answers=int(answered), cloud_failures=int(not answered))
        if not answered:
            return InferenceResult(True, edge_result, edge_result, None)
        return InferenceResult(True, cloud_result, edge_result, cloud_result)

    def _mine_then_infer(
        self, data: Any, post_process: Callable[[Any], Any] | None, kwargs: dict[str, Any]
    ) -> InferenceResult:
        """``MINING_MODE=mining-then-inference``: mining judges the sample itself; a hard one
        goes to the cloud only (the edge answers when the cloud cannot), an easy one to the
        edge only."""
        if self.hard_example_mining is None:
            raise ConfigError("MINING_MODE=mining-then-inference needs a hard example mining")
        is_hard = bool(self.hard_example_mining(data))
        self._counter.add(samples=1, hard=int(is_hard))
        if is_hard:
            answered, cloud_result = self._ask_cloud(data, batch=False)
            self._counter.add(cloud_answers=int(answered), cloud_failures=int(not answered))
            if answered:
                return InferenceResult(True, cloud_result, None, cloud_result)
        edge_result = self.estimator.predict(data, **kwargs)
        if post_process is not None:
            edge_result = post_process(edge_result)
        return InferenceResult(is_hard, edge_result, edge_result, None)

    def inference_batch(
        self,
        samples: Sequence[Any] | np.ndarray,
        post_process: Callable[[Any], Any] | None = None,
        **kwargs: Any,
    ) -> list[InferenceResult]:
        """:meth:`inference` for a batch: one edge ``predict`` call on the whole batch (which
        must return one prediction per sample) and one cloud request with its hard samples."""
        if len(samples) == 0:
            return []
        pending = self._edge_step(samples, post_process, kwargs)
        self._cloud_step([entry for entry in pending if entry.result is None])
        return [entry.final() for entry in pending]

    def inference_stream(
        self,
        samples: Iterable[Any],
        batch_size: int = 32,
        cloud_batch_size: int | None = None,
        post_process: Callable[[Any], Any] | None = None,
        max_in_flight: int = 1,
        **kwargs: Any,
    ) -> Iterator[InferenceResult]:
        """Results for a stream of samples, in input order, for throughput.

        Samples are predicted on the edge ``batch_size`` at a time; hard ones are queued and
        sent to the cloud ``cloud_batch_size`` (default ``batch_size``) at a time, so the cloud
        is called about once per ``cloud_batch_size`` hard samples instead of once per edge
        batch. Up to ``max_in_flight`` cloud requests run in the background while the edge
        goes on with the next samples (0: wait for each). A result is yielded once every
        earlier result is final.
        """
        if batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
        cloud_batch_size = batch_size if cloud_batch_size is None else cloud_batch_size
        if cloud_batch_size < 1:
            raise ConfigError(f"cloud_batch_size must be at least 1, got {cloud_batch_size}")
        if max_in_flight < 0:
            raise ConfigError(f"max_in_flight must be 0 or more, got {max_in_flight}")
        sender = _CloudSender(self._cloud_step, max_in_flight)
        pending: deque[_Pending] = deque()
        waiting: list[_Pending] = []
        try:
            for chunk in _chunks(samples, batch_size):
                entries = self._edge_step(_stack(chunk), post_process, kwargs)
                pending.extend(entries)
                waiting.extend(entry for entry in entries if entry.result is None)
                if len(waiting) >= cloud_batch_size:
                    sender.send(waiting)
                    waiting = []
                sender.collect_done()
                while pending and pending[0].result is not None:
                    yield pending.popleft().final()
            sender.send(waiting)
            sender.wait_all()
            while pending:
                yield pending.popleft().final()
        finally:
            sender.close()

    def _edge_step(
        self,
        samples: Sequence[Any] | np.ndarray,
        post_process: Callable[[Any], Any] | None,
        kwargs: dict[str, Any],
    ) -> list[_Pending]:
        count = len(samples)
        predictions = self.estimator.predict(samples, **kwargs)
        edge_results = list(predictions)
        if len(edge_results) != count:
            raise InvalidInputError(
                f"edge estimator returned {len(edge_results)} predictions for {count} samples"
            )
        if post_process is not None:
            edge_results = [post_process(result) for result in edge_results]
        if self.hard_example_mining is None:
            hard_flags = [False] * count
        elif post_process is None and isinstance(predictions, np.ndarray):
            # One array of per-sample results: algorithms may judge it in one vectorised step.
            hard_flags = self.hard_example_mining.is_hard_batch(predictions)
        else:
            hard_flags = self.hard_example_mining.is_hard_batch(edge_results)
        entries = [
            _Pending(sample, edge_result, bool(hard))
            for sample, edge_result, hard in zip(samples, edge_results, hard_flags, strict=True)
        ]
        self._counter.add(samples=count, hard=sum(entry.is_hard for entry in entries))
        return entries

    def _cloud_step(self, entries: list[_Pending]) -> None:
        if not entries:
            return
        answered, answers = self._ask_cloud(_stack([entry.sample for entry in entries]), batch=True)
        for index, entry in enumerate(entries):
            entry.resolve(answers[index] if answered else None, answered)
        if answered:
            self._counter.add(cloud_answers=len(entries))
        else:
            self._counter.add(cloud_failures=len(entries))

    def report(self, status: WorkerStatus = "running") -> bool:
        """Send the counters to the LC now; ``True`` when it took them."""
        stats, version = self._counter.snapshot()
        report = self.reporter.build(
            owner_kind=OWNER_KIND, kind=WORKER_KIND, status=status, task_info=stats.task_info()
        )
        delivered = self.reporter.report(report)
        if delivered:
            self._reported_version = version
        return delivered

    def close(self, status: WorkerStatus = "completed") -> None:
        """Stop periodic reporting, send the final report and close the cloud connection."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        if self._report_thread is not None:
            self._report_thread.join()
        _CLOSE_AT_EXIT.discard(self)
        stats = self.stats
        self.report(status)
        if self.cloud is not None:
            self.cloud.close()
        LOG.info(
            "joint inference finished",
            extra={
                "status": status,
                "inference_number": stats.inference_number,
                "hard_example_number": stats.hard_example_number,
                "cloud_failures": stats.cloud_failures,
            },
        )

    def __enter__(self) -> JointInference:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close("failed" if exc_type is not None else "completed")

    def _ask_cloud(self, data: Any, *, batch: bool) -> tuple[bool, Any]:
        if self.cloud is None or not self.breaker.allow():
            return False, None
        try:
            answer = self.cloud.predict(data, batch=batch)
        except CloudUnavailableError as error:
            delay = self.breaker.record_failure()
            LOG.warning(
                "cloud unavailable; using the edge result",
                extra={"error": str(error), "retry_in_seconds": delay},
            )
            return False, None
        if self.breaker.state != "closed":
            LOG.info("cloud is back", extra={"cloud": self.cloud.address})
        self.breaker.record_success()
        return True, answer

    def wait_for_cloud(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the cloud service to be ready (worth it at start,
        when edge and cloud workers start together); whether it is. Inference works either
        way: without the cloud, hard examples are answered on the edge."""
        if self.cloud is None:
            return False
        return self.cloud.wait_ready(timeout)

    @staticmethod
    def _cloud_client(host: str | None, port: int | None, timeout: float) -> CloudClient | None:
        if timeout <= 0:
            raise ConfigError(f"cloud timeout must be positive, got {timeout}")
        host = host or BaseConfig.big_model_ip
        if port is None:
            port = parse_port(BaseConfig.big_model_port, "BIG_MODEL_PORT")
        if not host:
            LOG.warning("BIG_MODEL_IP not set: hard examples are answered on the edge")
            return None
        return CloudClient(host, port or 5000, timeout=timeout)

    def _start_reporting(self, interval: float) -> threading.Thread | None:
        if not self.reporter.enabled:
            return None
        thread = threading.Thread(
            target=self._report_periodically, args=(interval,), name="lc-report", daemon=True
        )
        thread.start()
        return thread

    def _report_periodically(self, interval: float) -> None:
        self.report("running")
        while not self._stop.wait(interval):
            if self._counter.snapshot()[1] != self._reported_version or self.reporter.pending:
                self.report("running")


class _CloudSender:
    """Runs cloud steps synchronously, or on one background thread with a bounded queue."""

    def __init__(self, step: Callable[[list[_Pending]], None], max_in_flight: int) -> None:
        self._step = step
        self._max_in_flight = max_in_flight
        self._executor = (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="cloud-sender")
            if max_in_flight
            else None
        )
        self._in_flight: deque[Future[None]] = deque()

    def send(self, entries: list[_Pending]) -> None:
        if not entries:
            return
        if self._executor is None:
            self._step(entries)
            return
        self._in_flight.append(self._executor.submit(self._step, entries))
        while len(self._in_flight) > self._max_in_flight:
            self._in_flight.popleft().result()

    def collect_done(self) -> None:
        """Surface errors of finished steps (their results are already in the entries)."""
        while self._in_flight and self._in_flight[0].done():
            self._in_flight.popleft().result()

    def wait_all(self) -> None:
        while self._in_flight:
            self._in_flight.popleft().result()

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)


class _Pending:
    """A sample between its edge prediction and its final result."""

    __slots__ = ("edge_result", "is_hard", "result", "sample")

    def __init__(self, sample: Any, edge_result: Any, is_hard: bool) -> None:
        self.sample = sample
        self.edge_result = edge_result
        self.is_hard = is_hard
        self.result: InferenceResult | None = (
            None if is_hard else InferenceResult(False, edge_result, edge_result, None)
        )

    def resolve(self, cloud_result: Any, answered: bool) -> None:
        if answered:
            self.result = InferenceResult(True, cloud_result, self.edge_result, cloud_result)
        else:
            self.result = InferenceResult(True, self.edge_result, self.edge_result, None)

    def final(self) -> InferenceResult:
        assert self.result is not None, "sample still waiting for the cloud"
        return self.result


def _chunks(samples: Iterable[Any], size: int) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for sample in samples:
        chunk.append(sample)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _stack(samples: list[Any]) -> list[Any] | np.ndarray:
    """Samples as one array when they are arrays of one shape, else as a list."""
    first = samples[0] if samples else None
    if isinstance(first, np.ndarray) and all(
        isinstance(sample, np.ndarray) and sample.shape == first.shape for sample in samples
    ):
        return np.stack(samples)
    return list(samples)


def _mining_mode() -> str:
    mode = os.environ.get("MINING_MODE") or MINING_AFTER
    if mode not in (MINING_AFTER, MINING_FIRST):
        raise ConfigError(f"MINING_MODE must be {MINING_AFTER} or {MINING_FIRST}, got {mode!r}")
    return mode


def _report_interval(value: float | None) -> float:
    if value is None:
        # LC_PERIOD is upstream's name for it.
        variable = next(
            (name for name in ("REPORT_INTERVAL_SECONDS", "LC_PERIOD") if os.environ.get(name)),
            None,
        )
        if variable is None:
            return DEFAULT_REPORT_INTERVAL_SECONDS
        raw = os.environ[variable]
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(f"{variable} must be a number, got {raw!r}") from None
    if not value > 0:
        raise ConfigError(f"report interval must be positive, got {value}")
    return value


# Sedna scripts never close their JointInference: send the final report at exit, marked
# failed when the script died of an uncaught exception. Hooks are installed on first use.
_CLOSE_AT_EXIT: weakref.WeakSet[JointInference] = weakref.WeakSet()
_uncaught: list[BaseException] = []
_hooks_installed = threading.Event()


def _close_at_exit(instance: JointInference) -> None:
    _CLOSE_AT_EXIT.add(instance)
    if _hooks_installed.is_set():
        return
    _hooks_installed.set()
    previous_excepthook = sys.excepthook

    def record_uncaught(
        exc_type: type[BaseException], exc: BaseException, traceback: TracebackType | None
    ) -> None:
        _uncaught.append(exc)
        previous_excepthook(exc_type, exc, traceback)

    sys.excepthook = record_uncaught
    atexit.register(_close_all_at_exit)


def _close_all_at_exit() -> None:
    for instance in list(_CLOSE_AT_EXIT):
        instance.close("failed" if _uncaught else "completed")
