"""The GlobalManager's reconcile loop: informers feed one work queue; each key is reconciled by
its kind's policy (``gm.kinds``) into workers, downstream messages and one status write.

The loop knows no kind names. Upstream messages are recorded by ``gm.upstream`` and only queue
the object's key; its status is computed and written here, by ``gm.statuswriter``.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import redis
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from apis import (
    KINDS,
    KindInfo,
    LegacyConversionError,
    OwnerReference,
    parse_resource,
    to_canonical,
)
from broker import BusClient, BusMessage, topics
from broker.client import BusUnavailable
from broker.upstream import Upstream
from gm import status as status_rules
from gm.downstream import (
    DownstreamPublisher,
    NodeMessage,
    reporter_message,
    resource_message,
    worker_message,
)
from gm.informer import Informer, object_key
from gm.kinds import InputPolicy, JobPolicy, policy_for
from gm.metrics import GMMetrics
from gm.nodes import LC_LABEL, NodeListener, NodeRecorder
from gm.plan import PlanContext, PlanError
from gm.pods import PodsBackend
from gm.ports import ensure_ports, job_token
from gm.records import Records
from gm.settings import GMSettings
from gm.statuspatch import StatusPatch
from gm.statuswriter import StatusWriter, folded, job_status
from gm.upstream import RecordedBatch, UpstreamRecorder
from gm.workqueue import WorkQueue

log = logging.getLogger(__name__)

NODES = "nodes"
PODS = "pods"


def kind_id(info: KindInfo) -> str:
    """The work-queue prefix of a kind: ``<plural>.<group>``."""
    return f"{info.plural}.{info.group}"


def key_of(info: KindInfo, namespace: str, name: str) -> str:
    """The work-queue key of an object."""
    return f"{kind_id(info)}/{namespace}/{name}"


class GlobalManager:
    """Reconciles every Sedna resource against the workers and node state it needs."""

    def __init__(
        self,
        settings: GMSettings,
        api_client: client.ApiClient,
        bus: BusClient,
        metrics: GMMetrics,
        redis_client: redis.Redis | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self._custom = client.CustomObjectsApi(api_client)
        core = client.CoreV1Api(api_client)
        self._bus = bus
        self._stop = threading.Event()
        self.queue = WorkQueue()
        self.downstream = DownstreamPublisher(bus)
        self._kinds: dict[str, KindInfo] = {kind_id(i): i for i in KINDS}
        self.informers: dict[str, Informer] = {}
        for kid, info in self._kinds.items():
            list_func = functools.partial(
                self._custom.list_cluster_custom_object, info.group, info.version, info.plural
            )
            self.informers[kid] = Informer(kid, list_func, self._on_event(kid), api_client)
        self.informers[NODES] = Informer(NODES, core.list_node, self._on_node_event, api_client)
        self._pods: PodsBackend | None = None
        if settings.backend == "pods":
            self._pods = PodsBackend(api_client, settings.token_secret.get_secret_value())
            list_pods = functools.partial(
                core.list_pod_for_all_namespaces, label_selector="sedna.io/owner-name"
            )
            self.informers[PODS] = Informer(PODS, list_pods, self._on_pod_event, api_client)
        self.records = Records(redis_client, stop=self._stop)
        self.upstream = UpstreamRecorder(
            self.records, key_of, self._enqueue_recorded, metrics, self.downstream.sent
        )
        self.status = StatusWriter(StatusPatch(api_client), self.informers)
        # With Pods, the kubelet (KubeEdge's edged) owns the Node and its conditions.
        self.nodes = NodeRecorder(
            core, metrics, record=self._pods is None, cached=self.informers[NODES].get
        )
        self._threads: list[threading.Thread] = []
        self.ready = threading.Event()
        self._planning_inputs: dict[str, str] = {}  # input/Node key -> what plans use
        self._addresses_lock = threading.Lock()
        self._addresses: dict[str, str] | None = None  # node -> InternalIP (None: recompute)
        self._addresses_changes = 0  # Node address changes seen

    @property
    def node_listeners(self) -> list[NodeListener]:
        """Called with (node, "online"/"offline") whenever an LC's state changes."""
        return self.nodes.listeners

    def _enqueue_recorded(self, key: str) -> None:
        """Queue an object whose records changed, at most once per ``status_interval``: under
        load, the reports of one object arriving meanwhile are one later status write."""
        self.queue.add_spaced(key, self.settings.status_interval)

    def apply_upstream(self, batch: Sequence[Upstream]) -> RecordedBatch:
        """Record a batch of upstream messages (each id once, by the receiver, which commits
        the returned writes with the ids' marks)."""
        return self.upstream.apply(batch)

    # -- lifecycle -------------------------------------------------------------------------

    def start(self, sync_timeout: float = 60.0) -> None:
        """Sync informers, reconcile everything once, then serve events and upstream messages."""
        self.downstream.hold_manifests()
        self._subscribe(f"{topics.PREFIX}/+/down/#", self._on_retained)
        loaded = self.records.load()
        for informer in self.informers.values():
            informer.start()
        deadline = time.monotonic() + sync_timeout
        for informer in self.informers.values():
            if not informer.synced.wait(max(deadline - time.monotonic(), 0.1)):
                raise TimeoutError(f"informer {informer.name} did not sync in {sync_timeout}s")
        # With the Nodes cached, a retained state the Node already shows costs no API call.
        self._subscribe(topics.GM_STATE_SUBSCRIPTION, self.nodes.on_state)
        keys = [self._key(kid, obj) for kid, inf in self._kind_informers() for obj in inf.list()]
        for key in keys:
            self._reconcile_logged(key)
        self._bus.unsubscribe(f"{topics.PREFIX}/+/down/#")
        cleared = self.downstream.clear_orphans()
        if cleared:
            log.info("cleared %d retained messages nobody owns", cleared)
        for index in range(self.settings.workers):
            thread = threading.Thread(target=self._work, name=f"reconcile-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)
        self.ready.set()
        log.info("global manager ready", extra={"resources": len(keys), "records": loaded})

    def _subscribe(self, topic_filter: str, handler: Callable[[BusMessage], None]) -> None:
        """Subscribe; a broker slow to answer (a thousand nodes' retained messages on a busy
        box) delays the messages, it does not fail the start: the handler stays."""
        try:
            self._bus.subscribe(topic_filter, handler)
        except BusUnavailable as exc:
            log.warning("subscription not confirmed yet: %s", exc, extra={"filter": topic_filter})

    def stop(self) -> None:
        """Stop reconciling and watching."""
        self._stop.set()
        self.queue.shutdown()
        for informer in self.informers.values():
            informer.stop()
        self.nodes.close()
        self.downstream.close()

    def on_reconnect(self) -> None:
        """The broker may have lost retained messages: publish the whole desired state again."""
        self.downstream.republish()

    # -- events ----------------------------------------------------------------------------

    def _kind_informers(self) -> list[tuple[str, Informer]]:
        return [(kid, self.informers[kid]) for kid in self._kinds]

    def _is_input(self, kid: str) -> bool:
        return isinstance(policy_for(self._kinds[kid]), InputPolicy)

    def _job_informers(self) -> list[tuple[str, Informer]]:
        """The informers of jobs and services (not of the Models and Datasets they use)."""
        return [(k, i) for k, i in self._kind_informers() if not self._is_input(k)]

    def job_objects(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """``(kind, object)`` of every job and service the GM watches."""
        for kid, informer in self._job_informers():
            for obj in informer.list():
                yield self._kinds[kid].kind, obj

    def input_objects(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """``(kind, object)`` of every Model and Dataset the GM watches."""
        for kid, informer in self._kind_informers():
            if self._is_input(kid):
                for obj in informer.list():
                    yield self._kinds[kid].kind, obj

    def lc_nodes(self) -> set[str]:
        """The nodes an LC serves: online now, or labelled ``sedna.io/lc=true``."""
        labelled = {n for n, labels in self.node_labels().items() if labels.get(LC_LABEL) == "true"}
        return labelled | self.nodes.online()

    def node_labels(self) -> dict[str, dict[str, str]]:
        """Each cached Node's labels, by node name."""
        return {
            node["metadata"]["name"]: node["metadata"].get("labels") or {}
            for node in self.informers[NODES].list()
        }

    @staticmethod
    def _key(kid: str, obj: dict[str, Any]) -> str:
        return f"{kid}/{object_key(obj)}"

    def _on_event(self, kid: str) -> Callable[[str, dict[str, Any]], None]:
        def handle(event_type: str, obj: dict[str, Any]) -> None:
            self.queue.add(self._key(kid, obj))
            if self._is_input(kid):
                self._requeue_jobs_if_changed(kid, event_type, obj)

        return handle

    def _on_node_event(self, event_type: str, obj: dict[str, Any]) -> None:
        if self._requeue_jobs_if_changed(NODES, event_type, obj):
            with self._addresses_lock:
                self._addresses = None
                self._addresses_changes += 1

    def _requeue_jobs_if_changed(self, kid: str, event_type: str, obj: dict[str, Any]) -> bool:
        """Jobs are planned from input URLs and node addresses: re-plan them only when one of
        those changed, not on every status write (sample counts, node heartbeats). Returns
        whether they changed."""
        key = self._key(kid, obj)
        fingerprint = None if event_type == "DELETED" else planning_inputs(obj)
        if self._planning_inputs.get(key) == fingerprint:
            return False
        if fingerprint is None:
            self._planning_inputs.pop(key, None)
        else:
            self._planning_inputs[key] = fingerprint
        if not self.ready.is_set():
            return True
        for job_kid, informer in self._job_informers():
            for job in informer.list():
                self.queue.add(self._key(job_kid, job))
        return True

    def _on_pod_event(self, event_type: str, obj: dict[str, Any]) -> None:
        for ref in obj["metadata"].get("ownerReferences") or []:
            for info in self._kinds.values():
                if info.api_version == ref.get("apiVersion") and info.kind == ref.get("kind"):
                    self.queue.add(key_of(info, obj["metadata"]["namespace"], ref["name"]))

    def _on_retained(self, message: BusMessage) -> None:
        if message.retain:
            self.downstream.note_retained(message.topic, message.payload)

    # -- reconcile -------------------------------------------------------------------------

    def _work(self) -> None:
        while not self._stop.is_set():
            key = self.queue.get()
            if key is None:
                return
            try:
                if self._reconcile_logged(key):
                    self.queue.forget(key)
                else:
                    self.queue.add_rate_limited(key)
            finally:
                self.queue.done(key)
            self.metrics.queue_depth.set(len(self.queue))

    def _reconcile_logged(self, key: str) -> bool:
        kid, namespace, name = key.split("/", 2)
        kind = self._kinds[kid].kind
        where = {"kind": kind, "namespace": namespace, "job": name}
        started = time.monotonic()
        try:
            self.reconcile(key)
        except ApiException as exc:
            # A conflict only means someone wrote first: read again and retry.
            conflict = exc.status == 409
            self.metrics.reconciles.labels(
                kind=kind, result="conflict" if conflict else "error"
            ).inc()
            if conflict:
                self._refresh(kid, namespace, name)
            else:
                log.error("reconcile failed: %s %s", exc.status, exc.reason, extra=where)
            return False
        except Exception as exc:
            self.metrics.reconciles.labels(kind=kind, result="error").inc()
            log.exception("reconcile failed: %s", exc, extra=where)
            return False
        self.metrics.reconciles.labels(kind=kind, result="ok").inc()
        self.metrics.reconcile_seconds.labels(kind=kind).observe(time.monotonic() - started)
        return True

    def _refresh(self, kid: str, namespace: str, name: str) -> None:
        """After a 409, read the object once into the cache, so the retry (after the queue's
        short backoff) writes on top of the newer version instead of waiting for the watch."""
        info = self._kinds[kid]
        try:
            fresh = self._custom.get_namespaced_custom_object(
                info.group, info.version, namespace, info.plural, name
            )
        except ApiException as exc:
            if exc.status != 404:
                log.warning("refresh after a conflict failed: %s", exc.status)
            return
        if isinstance(fresh, dict) and fresh.get("metadata"):
            self.informers[kid].observe(fresh)

    def reconcile(self, key: str) -> None:
        """Bring one resource's workers, downstream messages and status in line with its spec."""
        kid, namespace, name = key.split("/", 2)
        info = self._kinds[kid]
        obj = self.informers[kid].get(f"{namespace}/{name}")
        if obj is None:
            self.downstream.remove_owner(key)
            if self._pods is not None:
                self._pods.remove(namespace, info.kind, name)
            self.records.drop(key)
            return
        policy = policy_for(info)
        if isinstance(policy, InputPolicy):
            nodes = policy.nodes(obj)
            self.downstream.set_owner(key, [resource_message(node, obj) for node in nodes])
            status = folded(policy, obj.get("status") or {}, self.records.of(key), {})
            self.status.write(kid, info, obj, status)
        elif isinstance(policy, JobPolicy):
            self._reconcile_job(kid, info, policy, obj)

    def _reconcile_job(
        self, kid: str, info: KindInfo, policy: JobPolicy, obj: dict[str, Any]
    ) -> None:
        key = self._key(kid, obj)
        stamp = status_rules.now()
        try:
            resource = to_canonical(parse_resource(obj))
        except (ValidationError, LegacyConversionError) as exc:
            pending = policy.pending(obj.get("status") or {}, "InvalidSpec", str(exc), stamp)
            self.status.write(kid, info, obj, pending)
            return
        others = (o for _, informer in self._kind_informers() for o in informer.list())
        ports, updated = ensure_ports(self._custom, info, obj, policy.ports(resource), others)
        if updated is not obj:
            self.informers[kid].observe(updated)
            obj = updated
        meta = obj["metadata"]
        owner = OwnerReference(
            api_version=info.api_version, kind=info.kind, name=meta["name"], uid=meta.get("uid")
        )
        namespace = meta.get("namespace", "default")
        previous = obj.get("status") or {}
        ctx = self._plan_context(namespace, ports, owner)
        try:
            workers = policy.plan(resource, owner, ctx, previous)
        except PlanError as exc:
            pending = policy.pending(previous, "WaitingForDependencies", str(exc), stamp)
            self.status.write(kid, info, obj, pending)
            self.queue.add_after(key, 5.0)
            return
        finished = policy.finished(previous)
        messages: list[NodeMessage] = []
        if not finished:
            canonical = resource.to_api()
            messages += [
                resource_message(node, body)
                for node, body in policy.downstream(resource, ctx, canonical, workers, previous)
            ]
            rv = str(meta.get("resourceVersion", ""))
            if self._pods is None:
                messages += [worker_message(w.node, w.pod(), rv) for w in workers]
            else:  # the kubelet runs them; the node's LC takes their reports
                messages += [reporter_message(w.node, self._pods.reporting(w), rv) for w in workers]
        self.downstream.set_owner(key, messages)
        pods = None
        if self._pods is not None:
            pods = self._pods.sync(namespace, owner, [] if finished else workers)
        bound = policy.bind(resource, ctx)
        status = job_status(bound, previous, self.records.of(key), workers, pods, stamp)
        self.status.write(kid, info, obj, status)
        for kind, name, fields in policy.input_statuses(resource, status):
            self._merge_status(kind, namespace, name, fields)

    def _merge_status(self, kind: str, namespace: str, name: str, fields: dict[str, Any]) -> None:
        """Merge ``fields`` into the status of an object a job uses (absent: nothing)."""
        kid = next((k for k, i in self._kinds.items() if i.kind == kind), None)
        obj = self.informers[kid].get(f"{namespace}/{name}") if kid else None
        if kid is None or obj is None:
            return
        self.status.write(kid, self._kinds[kid], obj, {**(obj.get("status") or {}), **fields})

    def _plan_context(
        self, namespace: str, ports: dict[str, int], owner: OwnerReference
    ) -> PlanContext:
        urls: dict[str, dict[str, str]] = {}
        for kid, informer in self._kind_informers():
            policy = policy_for(self._kinds[kid])
            if not isinstance(policy, InputPolicy):
                continue
            here = [o for o in informer.list() if o["metadata"].get("namespace") == namespace]
            if policy.plan_field:
                urls[policy.plan_field] = {
                    o["metadata"]["name"]: o["spec"]["url"]
                    for o in here
                    if "url" in o.get("spec", {})
                }
            if policy.node_field:
                urls[policy.node_field] = {
                    o["metadata"]["name"]: nodes[0] for o in here if (nodes := policy.nodes(o))
                }
        secret = self.settings.token_secret.get_secret_value()
        return PlanContext(
            **urls,
            node_addresses=self._node_addresses(),
            default_node_address=self.settings.default_node_address,
            ports=ports,
            job_token=job_token(secret, owner.uid),
            kb_server=self.settings.kb_server,
        )

    def _node_addresses(self) -> dict[str, str]:
        """Each Node's InternalIP, computed again only after a Node's addresses changed (every
        reconcile plans: at a thousand nodes a pass over them all cost a millisecond each)."""
        with self._addresses_lock:
            cached, changes = self._addresses, self._addresses_changes
        if cached is None:
            cached = {}
            for node in self.informers[NODES].list():
                for address in (node.get("status") or {}).get("addresses") or []:
                    if address.get("type") == "InternalIP":
                        cached[node["metadata"]["name"]] = address["address"]
            with self._addresses_lock:
                if self._addresses_changes == changes:  # no Node changed meanwhile
                    self._addresses = cached
        return dict(cached)


def planning_inputs(obj: dict[str, Any]) -> str:
    """What worker planning reads from a Model, Dataset or Node (its URL, node, addresses)."""
    spec = obj.get("spec") or {}
    addresses = (obj.get("status") or {}).get("addresses") or []
    return json.dumps(
        [spec.get("url"), spec.get("nodeName"), addresses, obj["metadata"].get("namespace")],
        sort_keys=True,
    )
