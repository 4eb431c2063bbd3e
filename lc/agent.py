"""The LocalController of one node: the bus on one side, workers and datasets on the other.

Downstream, the node's retained snapshot (``.../down/snapshot``, `apis.NodeSnapshot`) is its
whole desired state in one message. The LC subscribes to it anew at every (re)connect, at QoS 0
(nothing queues up while it is away), so a reconnect after any outage delivers exactly one
message and one pass makes the node match: what the snapshot lists runs, the rest stops. The
per-object topics (``.../down/+/+/+``) come live only (QoS 0, no retained copies): they carry
each change at once; the snapshot the GM sends after every batch of changes confirms them.
A snapshot older than the last one taken (its ``generation``), or an object older than the
one held (its resourceVersion) is ignored; a snapshot that does not validate is refused whole,
with an error naming what is wrong, and the state held stays. Only an empty payload or a
snapshot removes something, never a missing message. Upstream, every worker phase change,
worker report and dataset count goes through the Redis outbox and is re-sent until the GM
acknowledges it.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from apis import (
    DatasetMessage,
    NodeSnapshot,
    OwnerReference,
    ReportingWorker,
    WorkerMessage,
    WorkerReport,
)
from broker import (
    BusClient,
    BusError,
    BusMessage,
    MalformedMessage,
    Manifest,
    NodeState,
    Outbox,
    Will,
    bus_settings_from_url,
    connect_redis,
    topics,
)
from broker.client import BusClosed, SubscriptionOptions
from lc.datasets import DatasetMonitor, DatasetObservation
from lc.errors import InvalidReport, InvalidWorkerSpec
from lc.logserver import LogServer
from lc.metrics import LCMetrics
from lc.report_server import ReportServer
from lc.runtime import ProcessRuntime, WorkerStatus
from lc.settings import LCSettings
from lc.staged import StagedJobs
from lc.workertokens import TOKEN_ENV, WorkerTokens

log = logging.getLogger(__name__)

VERSION = "0.1.0"


def _rv(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


@dataclass
class DesiredState:
    """What the GM wants this node to hold, as last received."""

    workers: dict[str, dict[str, Any]] = field(default_factory=dict)  # ns/name -> pod
    resources: dict[str, dict[str, Any]] = field(default_factory=dict)  # Kind/ns/name -> obj
    versions: dict[str, int] = field(default_factory=dict)  # topic -> newest resourceVersion
    deleted_workers: set[str] = field(default_factory=set)  # ns/name cleared by the GM
    # Workers a kubelet runs here (pods backend), ns/name -> the GM's record; only those the
    # manifest names (``reporter_keys``, None before the first manifest) count.
    reporters: dict[str, ReportingWorker] = field(default_factory=dict)
    reporter_keys: set[str] | None = None
    manifest: Manifest | None = None
    #: Of the last snapshot taken (0: none yet; then the snapshot, not the manifest, decides).
    generation: int = 0
    #: Topics a per-object message set or cleared since the last snapshot that came live (a
    #: snapshot the broker sends on subscribing may be older than them).
    pending: set[str] = field(default_factory=set)
    #: topic -> resourceVersion it had when an empty payload deleted it.
    tombstones: dict[str, int] = field(default_factory=dict)


@dataclass
class DownstreamCounts:
    """What the LC received downstream and did with it (for tests and benchmarks)."""

    messages: int = 0  # per-object messages
    snapshots: int = 0  # snapshots taken
    stale: int = 0  # snapshots ignored: not newer than the last one taken
    refused: int = 0  # snapshots that did not validate
    passes: int = 0  # sync passes run because something arrived


class LocalController:
    """Runs one node's share of every job."""

    def __init__(self, settings: LCSettings) -> None:
        self.settings = settings
        self.node = settings.node
        self.metrics = LCMetrics()
        self.redis = connect_redis(settings.redis_url)
        password = settings.mqtt_password.get_secret_value() if settings.mqtt_password else None
        offline = NodeState(state="offline", version=VERSION).to_bytes()
        self.bus = BusClient(
            f"sedna-lc-{self.node}",
            bus_settings_from_url(settings.mqtt_url, settings.mqtt_username, password),
            will=Will(topic=topics.state_topic(self.node), payload=offline, retain=True),
        )
        self.outbox = Outbox(self.node, self.redis, self.bus)
        self.tokens = WorkerTokens(settings.data_dir)
        self.reports = ReportServer(
            self._on_report,
            port=settings.report_port,
            metrics=self.metrics,
            authorize=self._authorize_report,
        )
        self.runtime = ProcessRuntime(
            self.redis,
            settings.data_dir,
            node=self.node,
            on_status=self._on_worker_status,
            grace_period=settings.worker_grace_period,
            metrics=self.metrics,
        )
        self.metrics.watch_workers(self.runtime.statuses, self.node)
        token = settings.log_token.get_secret_value() if settings.log_token else None
        self.logs = LogServer(
            self.runtime,
            node=self.node,
            token=token,
            host=settings.log_host,
            port=settings.log_port,
        )
        self.datasets = DatasetMonitor(self._on_dataset, period=settings.dataset_poll_period)
        self.staged = StagedJobs(self.node, settings.data_dir, self.outbox.put)
        self.desired = DesiredState()
        self.counts = DownstreamCounts()
        self._watched: set[str] = set()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._staged_wake = threading.Event()  # the node holds a staged job (again)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        #: Seconds between two syncs when nothing arrives (a sync also retries what failed).
        self.sync_period = 2.0
        self.bus.connect_listeners.append(self._announce)

    @property
    def report_url(self) -> str:
        """``LC_SERVER`` for this node's workers."""
        return self.reports.url

    # -- lifecycle -------------------------------------------------------------------------

    def start(self, connect_timeout: float | None = 30.0) -> None:
        """Serve reports, adopt running workers, then connect and follow the desired state."""
        self.reports.start()
        self.runtime.start()
        self.logs.start()
        self.datasets.start()
        self.start_loop(self._staged_loop, "staged")
        self.connect(connect_timeout)
        log.info("local controller started", extra={"node": self.node, "lc": self.report_url})

    def connect(self, connect_timeout: float | None = 30.0) -> None:
        """The bus part of `start`: follow the node's desired state (the sync loop) and send
        upstream. A simulated node (``benchmarks/scale.py``) starts only this."""
        # At every connect the one retained snapshot; the per-object topics only live.
        self.bus.subscribe(
            topics.snapshot_topic(self.node),
            self._on_down,
            options=SubscriptionOptions(qos=0, renew_on_connect=True),
        )
        self.bus.subscribe(
            topics.down_live_filter(self.node),
            self._on_down,
            options=SubscriptionOptions(qos=0, retain_handling=2),
        )
        self.outbox.start()
        self.start_loop(self._sync_loop, "sync")
        self.bus.start(wait=connect_timeout)
        self._drop_old_subscription()

    def start_loop(self, target: Callable[[], None], name: str) -> None:
        """Run ``target`` on a thread of its own, joined by `stop`."""
        thread = threading.Thread(target=target, name=f"lc-{self.node}-{name}", daemon=True)
        thread.start()
        self._threads.append(thread)

    def _drop_old_subscription(self) -> None:
        """A session of an earlier LC may still hold ``.../down/#`` at QoS 1 (every change
        queued while away): it goes."""
        if self.bus.connected.is_set():
            try:
                self.bus.unsubscribe(topics.down_filter(self.node))
            except BusError as exc:
                log.info("could not drop the old subscription: %s", exc, extra={"node": self.node})

    def stop(self, stop_workers: bool = False) -> None:
        """Stop following the bus. Workers keep running for the next LC to adopt, unless
        ``stop_workers`` (the whole node goes down, as when ``sedna up`` stops)."""
        self._stop.set()
        self._wake.set()
        self._staged_wake.set()
        for thread in self._threads:  # no sync may start a worker from here on
            thread.join(5)
        if stop_workers:
            self.runtime.remove_all()
        try:
            self.bus.publish(
                topics.state_topic(self.node),
                NodeState(state="offline", version=VERSION),
                retain=True,
                timeout=2,
            )
        except Exception as exc:  # the broker may be gone already
            log.info("could not announce going offline: %s", exc, extra={"node": self.node})
        self.outbox.close()
        self.bus.close()
        self.datasets.close()
        self.runtime.close()
        self.logs.close()
        self.reports.close()

    def _announce(self) -> None:
        """Say ``online`` (retained) on every connection, since the will may have fired (on
        paho's thread: queued, never awaited; a connection lost first announces again)."""
        online = NodeState(state="online", version=VERSION, log_port=self.logs.port)
        future = self.bus.publish_async(topics.state_topic(self.node), online, retain=True)
        future.add_done_callback(self._announced)

    def _announced(self, future: Future[None]) -> None:
        error = future.exception()
        if error is not None and not isinstance(error, BusClosed):
            log.warning("could not announce presence: %s", error, extra={"node": self.node})

    # -- downstream ------------------------------------------------------------------------

    def _on_down(self, message: BusMessage) -> None:
        reporter: ReportingWorker | None = None
        try:
            topic = topics.parse_topic(message.topic)
            if isinstance(topic, topics.SnapshotTopic):
                self._on_snapshot(message)
                return
            body = json.loads(message.payload) if message.payload else None
            if isinstance(topic, topics.ManifestTopic):
                manifest = Manifest.from_bytes(message.payload) if message.payload else None
            elif body is not None and not isinstance(body, dict):
                raise MalformedMessage(f"{message.topic}: payload must be a JSON object")
            elif isinstance(topic, topics.ReporterTopic):
                reporter = _reporter(topic, body)
        except (topics.InvalidTopic, MalformedMessage, ValueError) as exc:
            log.error("dropping bad downstream message: %s", exc, extra={"node": self.node})
            return
        with self._lock:
            self.counts.messages += 1
            if isinstance(topic, topics.ManifestTopic):
                if manifest is not None:
                    self.desired.manifest = manifest
                    self.desired.reporter_keys = {
                        f"{i.namespace}/{i.name}"
                        for i in manifest.items
                        if i.kind == ReportingWorker.MANIFEST_KIND
                    }
            elif isinstance(topic, topics.ReporterTopic):
                self.desired.pending.add(message.topic)
                key = f"{topic.namespace}/{topic.name}"
                if reporter is None:
                    self.desired.reporters.pop(key, None)
                else:
                    self.desired.reporters[key] = reporter
            elif isinstance(topic, topics.WorkerTopic | topics.DownTopic):
                self.desired.pending.add(message.topic)
                self._record(message.topic, topic, body)
        self._wake.set()

    def _on_snapshot(self, message: BusMessage) -> None:
        """Take the node's whole desired state, if it validates and is newer than the last."""
        try:
            snapshot = NodeSnapshot.model_validate_json(message.payload)
            if snapshot.node != self.node:
                raise MalformedMessage(f"it is the snapshot of node {snapshot.node!r}")
            wanted = {_item_topic(self.node, item): item for item in snapshot.items}
            reporters = {
                t: ReportingWorker.model_validate(i.body)
                for t, i in wanted.items()
                if i.kind == ReportingWorker.MANIFEST_KIND
            }
        except (ValidationError, MalformedMessage, topics.InvalidTopic) as exc:
            with self._lock:
                self.counts.refused += 1
            log.error(
                "refusing an invalid snapshot, keeping the state held: %s",
                _explain(exc),
                extra={"node": self.node},
            )
            return
        with self._lock:
            held = self.desired.generation
            if snapshot.generation <= held:
                self.counts.stale += 1
                log.info(
                    "ignoring an out-of-date snapshot (generation %d, holding %d)",
                    snapshot.generation,
                    held,
                    extra={"node": self.node},
                )
                return
            self._take(snapshot, wanted, reporters, live=not message.retain)
        self._wake.set()

    def _take(
        self,
        snapshot: NodeSnapshot,
        wanted: dict[str, Any],
        reporters: dict[str, ReportingWorker],
        *,
        live: bool,
    ) -> None:
        """Make the desired state the snapshot's (under the lock). A snapshot the broker sent on
        subscribing (not ``live``) may be older than per-object messages already taken: those
        stay until a live snapshot confirms or removes them."""
        desired = self.desired
        node = self.node
        held = {topics.worker_topic(node, *k.split("/", 1)): k for k in desired.workers}
        held |= {topics.down_topic(node, *k.split("/", 2)): k for k in desired.resources}
        held |= {topics.reporter_topic(node, *k.split("/", 1)): k for k in desired.reporters}
        for topic, key in held.items():
            if topic in wanted or (not live and topic in desired.pending):
                continue
            self._forget(topic, key)
        for topic, item in wanted.items():
            version = _rv(item.resource_version)
            if version < desired.versions.get(topic, 0) or version <= desired.tombstones.get(
                topic, -1
            ):
                continue  # what is held is newer
            if topic in reporters:
                desired.reporters[reporters[topic].key] = reporters[topic]
                desired.versions[topic] = version
            else:
                self._record(topic, topics.parse_topic(topic), item.body)
        desired.generation = snapshot.generation
        desired.manifest, desired.reporter_keys = None, None  # the snapshot decides
        if live:
            desired.pending.clear()
            desired.tombstones.clear()
        self.counts.snapshots += 1

    def _forget(self, topic: str, key: str) -> None:
        parsed = topics.parse_topic(topic)
        if isinstance(parsed, topics.ReporterTopic):
            self.desired.reporters.pop(key, None)
            self.desired.tombstones[topic] = self.desired.versions.pop(topic, 0)
        else:
            self._record(topic, parsed, None)

    def _record(self, raw_topic: str, topic: Any, body: dict[str, Any] | None) -> None:
        is_worker = isinstance(topic, topics.WorkerTopic)
        if is_worker:
            key, store = f"{topic.namespace}/{topic.name}", self.desired.workers
        else:
            key, store = f"{topic.kind}/{topic.namespace}/{topic.name}", self.desired.resources
        if body is None:
            store.pop(key, None)
            self.desired.tombstones[raw_topic] = self.desired.versions.pop(raw_topic, 0)
            if is_worker:
                self.desired.deleted_workers.add(key)
            return
        version = _rv(body.get("metadata", {}).get("resourceVersion"))
        if version < self.desired.versions.get(raw_topic, 0):
            log.info("ignoring an older version", extra={"node": self.node, "object": key})
            return
        if is_worker:
            self.desired.deleted_workers.discard(key)
        self.desired.versions[raw_topic] = version
        self.desired.tombstones.pop(raw_topic, None)
        store[key] = body

    def _sync_loop(self) -> None:
        while not self._stop.is_set():
            woken = self._wake.wait(self.sync_period)
            self._wake.clear()
            if self._stop.is_set():
                return
            if woken:
                self.counts.passes += 1
            try:
                self.sync()
            except Exception:
                log.exception("sync failed", extra={"node": self.node})

    def sync(self) -> None:
        """Make running workers and watched datasets match the desired state (idempotent)."""
        with self._lock:
            workers = dict(self.desired.workers)
            resources = dict(self.desired.resources)
            deleted = set(self.desired.deleted_workers)
            manifest = self.desired.manifest
            from_snapshot = self.desired.generation > 0
        wanted_workers: set[str] | None = None
        if from_snapshot:  # the snapshot lists everything; what runs and is not wanted stops
            wanted_workers = set(workers)
        elif manifest is not None:
            wanted = {(i.kind, i.namespace, i.name) for i in manifest.items}
            wanted_workers = {f"{ns}/{name}" for kind, ns, name in wanted if kind == "Pod"}
            workers = {k: v for k, v in workers.items() if k in wanted_workers}
            resources = {k: v for k, v in resources.items() if tuple(k.split("/", 2)) in wanted}
        for key, pod in workers.items():
            try:
                namespace, name = key.split("/", 1)
                env = {"LC_SERVER": self.report_url, TOKEN_ENV: self.tokens.token(namespace, name)}
                self.runtime.ensure(pod, env=env)
            except InvalidWorkerSpec as exc:
                where = {"node": self.node, "namespace": namespace, "worker": name}
                log.error("cannot run worker: %s", exc, extra=where)
        # Only an empty payload or the manifest removes a worker, never a missing message.
        for status in self.runtime.statuses():
            key = f"{status.namespace}/{status.name}"
            if key in deleted or (wanted_workers is not None and key not in wanted_workers):
                log.info(
                    "stopping a worker that is no longer wanted",
                    extra={"node": self.node, "namespace": status.namespace, "worker": status.name},
                )
                self.runtime.remove(status.name, status.namespace)
        datasets = {
            k.split("/", 1)[1]: v.get("spec", {})
            for k, v in resources.items()
            if k.startswith("Dataset/")
        }
        for key, spec in datasets.items():
            self.datasets.watch(key, spec.get("url", ""), spec.get("format", ""))
        for key in self._watched - datasets.keys():
            self.datasets.unwatch(key)
        self._watched = set(datasets)
        self.staged.update(resources)
        if len(self.staged):
            self._staged_wake.set()

    def _staged_loop(self) -> None:
        """Staged jobs: read new samples, check train triggers, carry out deploys. Asleep
        while the node holds none (the sync that brings one wakes it)."""
        while not self._stop.is_set():
            if not len(self.staged):
                self._staged_wake.wait()
                self._staged_wake.clear()
                continue
            if self._stop.wait(min(max(self.staged.seconds_until_due(), 0.05), 1.0)):
                return
            self.staged.tick()

    # -- upstream --------------------------------------------------------------------------

    def _on_worker_status(self, status: WorkerStatus) -> None:
        owner = status.owner
        if owner is None:
            return
        message = WorkerMessage(
            worker=status.name,
            owner_api_version=owner.api_version,
            node=self.node,
            phase=status.phase.value,
            exit_code=status.exit_code,
            restart_count=status.restarts,
        )
        self.outbox.put(owner.kind, status.namespace, owner.name, message.to_api())

    def _reporter(self, namespace: str, name: str) -> ReportingWorker | None:
        """The GM's record of a worker a kubelet runs on this node, if it still runs here."""
        key = f"{namespace}/{name}"
        with self._lock:
            keys = self.desired.reporter_keys
            return self.desired.reporters.get(key) if keys is None or key in keys else None

    def _authorize_report(self, namespace: str, worker: str, token: str | None) -> str | None:
        """Why a report may not be taken (None: it may): only from workers of this node, each
        with its own token: those this LC runs (its token), those a kubelet runs here as the GM
        said (the token whose digest the GM sent)."""
        if self.runtime.status(worker, namespace) is not None:
            valid = self.tokens.valid(namespace, worker, token)
        elif (reporter := self._reporter(namespace, worker)) is not None:
            valid = reporter.accepts(token)
        else:
            return "unknown_worker"
        return None if valid else "bad_worker_token"

    def _owner_of(self, namespace: str, name: str) -> OwnerReference | None:
        """The owner of a worker of this node as this LC knows it (its runtime, or the GM)."""
        status = self.runtime.status(name, namespace)
        if status is not None:
            return status.owner
        reporter = self._reporter(namespace, name)
        return reporter.owner if reporter is not None else None

    def _on_report(self, report: WorkerReport) -> None:
        # The owner is the LC's own record of the worker, never what the body names.
        owner = self._owner_of(report.namespace, report.name)
        if owner is None:
            raise InvalidReport(
                f"worker {report.namespace}/{report.name} has no owner on this node", field="name"
            )
        kind, name = owner.kind, owner.name
        api_version: str | None = owner.api_version
        message = WorkerMessage(
            worker=report.name,
            owner_api_version=api_version,
            node=self.node,
            status=report.status,
            output=report.output(),
        )
        self.outbox.put(kind, report.namespace, name, message.to_api())
        if report.kind == "deploy":  # a hot update's outcome: the Deploy stage's, too
            detail = report.output().progress().get("message")
            urls = [m.url for m in report.models]
            self.staged.on_deploy_report(report.namespace, name, report.status, urls, detail)

    def _on_dataset(self, seen: DatasetObservation) -> None:
        if seen.number_of_samples is None:
            return
        namespace, name = seen.key.split("/", 1)
        message = DatasetMessage(number_of_samples=seen.number_of_samples, message=seen.message)
        self.outbox.put("Dataset", namespace, name, message.to_api())


def _reporter(topic: topics.ReporterTopic, body: dict[str, Any] | None) -> ReportingWorker | None:
    """The worker a ``down/reporters`` message announces (None: it is gone); raises ValueError."""
    if body is None:
        return None
    reporter = ReportingWorker.model_validate(body)
    if reporter.key != f"{topic.namespace}/{topic.name}":
        raise MalformedMessage(f"{topic}: the body names worker {reporter.key}")
    return reporter


def _item_topic(node: str, item: Any) -> str:
    """The per-object topic a snapshot item stands for."""
    if item.kind == "Pod":
        return topics.worker_topic(node, item.namespace, item.name)
    if item.kind == ReportingWorker.MANIFEST_KIND:
        return topics.reporter_topic(node, item.namespace, item.name)
    return topics.down_topic(node, item.kind, item.namespace, item.name)


def _explain(exc: Exception) -> str:
    """What is wrong with a snapshot, field by field."""
    if not isinstance(exc, ValidationError):
        return str(exc)
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}"
        for e in exc.errors(include_url=False)
    )
