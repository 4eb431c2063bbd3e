"""The GlobalManager: informers feed one work queue; reconcilers plan workers, publish
downstream and write status; upstream messages from LCs update status once each.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from apis import KINDS, KindInfo, parse_resource, to_canonical
from apis.base import OwnerReference
from apis.kinds import WorkerStatus
from apis.legacy import LegacyConversionError
from apis.messages import DatasetMessage, WorkerMessage
from broker import topics
from broker.client import BusClient, BusMessage
from broker.envelope import Envelope, MalformedMessage, NodeState
from broker.topics import UpTopic
from gm import status as status_rules
from gm.downstream import DownstreamPublisher, NodeMessage, resource_message, worker_message
from gm.informer import Informer, object_key
from gm.metrics import GMMetrics
from gm.plan import (
    DesiredWorker,
    PlanContext,
    PlanError,
    allocate_port,
    plan_workers,
    ports_needed,
)
from gm.pods import PodsBackend, phases_from_pods
from gm.reports import apply_worker_message
from gm.settings import GMSettings
from gm.workqueue import WorkQueue

log = logging.getLogger(__name__)

PORTS_ANNOTATION = "sedna.io/ports"
NODES = "nodes"
PODS = "pods"
STATUS_RETRIES = 5


# Kinds that jobs are planned from, not jobs themselves.
INPUT_KINDS = frozenset({"Model", "Dataset"})


def kind_id(info: KindInfo) -> str:
    """The work-queue prefix of a kind: ``<plural>.<group>``."""
    return f"{info.plural}.{info.group}"


class GlobalManager:
    """Reconciles every Sedna resource against the workers and node state it needs."""

    def __init__(
        self,
        settings: GMSettings,
        api_client: client.ApiClient,
        bus: BusClient,
        metrics: GMMetrics,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self._api_client = api_client
        self._custom = client.CustomObjectsApi(api_client)
        self._core = client.CoreV1Api(api_client)
        self._bus = bus
        self.queue = WorkQueue()
        self.downstream = DownstreamPublisher(bus)
        self._kinds: dict[str, KindInfo] = {kind_id(i): i for i in KINDS}
        self.informers: dict[str, Informer] = {}
        for kid, info in self._kinds.items():
            list_func = functools.partial(
                self._custom.list_cluster_custom_object, info.group, info.version, info.plural
            )
            self.informers[kid] = Informer(kid, list_func, self._on_event(kid), api_client)
        self.informers[NODES] = Informer(
            NODES, self._core.list_node, self._on_node_event, api_client
        )
        self._pods: PodsBackend | None = None
        if settings.backend == "pods":
            self._pods = PodsBackend(api_client)
            list_pods = functools.partial(
                self._core.list_pod_for_all_namespaces, label_selector="sedna.io/owner-name"
            )
            self.informers[PODS] = Informer(PODS, list_pods, self._on_pod_event, api_client)
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self.ready = threading.Event()
        self._planning_inputs: dict[str, str] = {}  # Model/Dataset/Node key -> what plans use
        #: Called with (node, "online"/"offline") whenever an LC's state changes.
        self.node_listeners: list[Callable[[str, str], None]] = []

    # -- lifecycle -------------------------------------------------------------------------

    def start(self, sync_timeout: float = 60.0) -> None:
        """Sync informers, reconcile everything once, then serve events and upstream messages."""
        self._bus.subscribe(f"{topics.PREFIX}/+/down/#", self._on_retained)
        self._bus.subscribe(topics.GM_STATE_SUBSCRIPTION, self._on_node_state)
        for informer in self.informers.values():
            informer.start()
        deadline = time.monotonic() + sync_timeout
        for informer in self.informers.values():
            if not informer.synced.wait(max(deadline - time.monotonic(), 0.1)):
                raise TimeoutError(f"informer {informer.name} did not sync in {sync_timeout}s")
        keys = [self._key(kid, obj) for kid, inf in self._kinds_informers() for obj in inf.list()]
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
        log.info("global manager ready", extra={"resources": len(keys)})

    def stop(self) -> None:
        """Stop reconciling and watching."""
        self._stop.set()
        self.queue.shutdown()
        for informer in self.informers.values():
            informer.stop()

    def on_reconnect(self) -> None:
        """The broker may have lost retained messages: publish the whole desired state again."""
        self.downstream.republish()

    # -- events ----------------------------------------------------------------------------

    def _kinds_informers(self) -> list[tuple[str, Informer]]:
        return [(kid, self.informers[kid]) for kid in self._kinds]

    def _job_informers(self) -> list[tuple[str, Informer]]:
        """The informers of jobs and services (not of the Models and Datasets they use)."""
        return [
            (k, i) for k, i in self._kinds_informers() if self._kinds[k].kind not in INPUT_KINDS
        ]

    def job_objects(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """``(kind, object)`` of every job and service the GM watches."""
        for kid, informer in self._job_informers():
            for obj in informer.list():
                yield self._kinds[kid].kind, obj

    @staticmethod
    def _key(kid: str, obj: dict[str, Any]) -> str:
        return f"{kid}/{object_key(obj)}"

    def _on_event(self, kid: str) -> Callable[[str, dict[str, Any]], None]:
        def handle(event_type: str, obj: dict[str, Any]) -> None:
            self.queue.add(self._key(kid, obj))
            if self._kinds[kid].kind in INPUT_KINDS:
                self._requeue_jobs_if_changed(kid, event_type, obj)

        return handle

    def _on_node_event(self, event_type: str, obj: dict[str, Any]) -> None:
        self._requeue_jobs_if_changed(NODES, event_type, obj)

    def _requeue_jobs_if_changed(self, kid: str, event_type: str, obj: dict[str, Any]) -> None:
        """Jobs are planned from Model/Dataset URLs and node addresses: re-plan them only when
        one of those changed, not on every status write (sample counts, node heartbeats)."""
        key = self._key(kid, obj)
        fingerprint = None if event_type == "DELETED" else planning_inputs(obj)
        if self._planning_inputs.get(key) == fingerprint:
            return
        if fingerprint is None:
            self._planning_inputs.pop(key, None)
        else:
            self._planning_inputs[key] = fingerprint
        self._requeue_jobs()

    def _on_pod_event(self, event_type: str, obj: dict[str, Any]) -> None:
        for ref in obj["metadata"].get("ownerReferences") or []:
            for kid, info in self._kinds.items():
                if info.api_version == ref.get("apiVersion") and info.kind == ref.get("kind"):
                    self.queue.add(f"{kid}/{obj['metadata']['namespace']}/{ref['name']}")

    def _requeue_jobs(self) -> None:
        if not self.ready.is_set():
            return
        for kid, informer in self._job_informers():
            for obj in informer.list():
                self.queue.add(self._key(kid, obj))

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
        started = time.monotonic()
        try:
            self.reconcile(key)
        except ApiException as exc:
            # A conflict only means someone wrote first: read again and retry.
            conflict = exc.status == 409
            result = "conflict" if conflict else "error"
            self.metrics.reconciles.labels(kind=kind, result=result).inc()
            if not conflict:
                log.error(
                    "reconcile failed: %s %s",
                    exc.status,
                    exc.reason,
                    extra={"kind": kind, "namespace": namespace, "job": name},
                )
            return False
        except Exception as exc:
            self.metrics.reconciles.labels(kind=kind, result="error").inc()
            log.exception(
                "reconcile failed: %s",
                exc,
                extra={"kind": kind, "namespace": namespace, "job": name},
            )
            return False
        self.metrics.reconciles.labels(kind=kind, result="ok").inc()
        self.metrics.reconcile_seconds.labels(kind=kind).observe(time.monotonic() - started)
        return True

    def reconcile(self, key: str) -> None:
        """Bring one resource's workers, downstream messages and status in line with its spec."""
        kid, namespace, name = key.split("/", 2)
        info = self._kinds[kid]
        obj = self.informers[kid].get(f"{namespace}/{name}")
        if obj is None:
            self.downstream.remove_owner(key)
            if self._pods is not None:
                self._pods.remove(namespace, info.kind, name)
            return
        if info.kind == "Model":
            return
        if info.kind == "Dataset":
            node = obj.get("spec", {}).get("nodeName")
            self.downstream.set_owner(key, [resource_message(node, obj)] if node else [])
            return
        try:
            resource = to_canonical(parse_resource(obj))
        except (ValidationError, LegacyConversionError) as exc:
            self._write_status(info, obj, self._pending(obj, "InvalidSpec", str(exc)))
            return
        ports, obj = self._ensure_ports(info, obj, resource)
        owner = OwnerReference(
            api_version=info.api_version, kind=info.kind, name=name, uid=obj["metadata"].get("uid")
        )
        try:
            workers = plan_workers(resource, owner, self._plan_context(namespace, ports, owner))
        except PlanError as exc:
            self._write_status(info, obj, self._pending(obj, "WaitingForDependencies", str(exc)))
            self.queue.add_after(key, 5.0)
            return
        terminal = (obj.get("status") or {}).get("phase") in ("Succeeded", "Failed")
        canonical = resource.to_api()
        messages: list[NodeMessage] = []
        if not terminal:
            rv = str(obj["metadata"].get("resourceVersion", ""))
            for node in sorted({w.node for w in workers}):
                messages.append(resource_message(node, canonical))
            if self._pods is None:
                messages += [worker_message(w.node, w.pod(), rv) for w in workers]
        self.downstream.set_owner(key, messages)
        stored = obj
        if self._pods is not None:
            obj = self._with_pod_phases(
                obj, self._pods.sync(namespace, owner, [] if terminal else workers)
            )
        self._write_status(info, stored, self._derived_status(info, obj, workers))

    @staticmethod
    def _with_pod_phases(obj: dict[str, Any], pods: list[dict[str, Any]]) -> dict[str, Any]:
        """``obj`` with ``status.workers`` updated from its worker Pods (``pods`` backend)."""
        status = dict(obj.get("status") or {})
        entries = {w["name"]: dict(w) for w in status.get("workers") or []}
        for name, observed in phases_from_pods(pods).items():
            entries[name] = {**entries.get(name, {}), **observed}
            role = _role_of(obj["metadata"]["name"], name)
            if role:
                entries[name]["role"] = role
        status["workers"] = [entries[n] for n in sorted(entries)]
        return {**obj, "status": status}

    def _pending(self, obj: dict[str, Any], reason: str, message: str) -> dict[str, Any]:
        status = dict(obj.get("status") or {})
        conditions = [dict(c) for c in status.get("conditions") or []]
        last = conditions[-1] if conditions else {}
        if last.get("reason") != reason or last.get("message") != message:
            stamp = status_rules.now()
            conditions.append(
                {
                    "type": "Pending",
                    "status": "True",
                    "lastTransitionTime": stamp,
                    "reason": reason,
                    "message": message,
                }
            )
        status["conditions"] = conditions[-status_rules.MAX_CONDITIONS :]
        if "phase" in status or "Federated" in obj.get("kind", ""):
            status["phase"] = "Pending"
        return status

    def _derived_status(
        self, info: KindInfo, obj: dict[str, Any], workers: list[DesiredWorker]
    ) -> dict[str, Any]:
        previous = obj.get("status") or {}
        observed = [WorkerStatus.model_validate(w) for w in previous.get("workers") or []]
        desired = {w.name for w in workers}
        observed = [w for w in observed if w.name in desired]
        stamp = status_rules.now()
        if info.kind == "JointInferenceService":
            return status_rules.joint_inference_status(previous, observed, len(workers), stamp)
        if info.kind in ("FederatedLearningJob", "FederatedLearningTask"):
            return status_rules.federated_learning_status(previous, observed, len(workers), stamp)
        return previous

    def _write_status(self, info: KindInfo, obj: dict[str, Any], status: dict[str, Any]) -> None:
        previous = obj.get("status") or {}
        if status_rules.same_status(previous, status):
            return
        meta = obj["metadata"]
        body = {"metadata": {"resourceVersion": meta["resourceVersion"]}, "status": status}
        self._custom.patch_namespaced_custom_object_status(
            info.group, info.version, meta.get("namespace", "default"), info.plural,
            meta["name"], body,
        )  # fmt: skip

    def _ensure_ports(self, info: KindInfo, obj: dict[str, Any], resource: Any) -> dict[str, int]:
        roles = ports_needed(resource)
        annotations = obj["metadata"].get("annotations") or {}
        try:
            ports = {
                k: int(v) for k, v in json.loads(annotations.get(PORTS_ANNOTATION, "{}")).items()
            }
        except (ValueError, AttributeError):
            ports = {}
        missing = [r for r in roles if r not in ports]
        if not missing:
            return ports, obj
        used = set()
        for _, informer in self._kinds_informers():
            for other in informer.list():
                text = (other["metadata"].get("annotations") or {}).get(PORTS_ANNOTATION)
                if text:
                    try:
                        used.update(int(p) for p in json.loads(text).values())
                    except (ValueError, AttributeError):
                        continue
        for role in missing:
            ports[role] = allocate_port(used, f"{obj['metadata'].get('uid')}/{role}")
            used.add(ports[role])
        meta = obj["metadata"]
        patch = {
            "metadata": {
                "resourceVersion": meta["resourceVersion"],
                "annotations": {PORTS_ANNOTATION: json.dumps(ports)},
            }
        }
        updated = self._custom.patch_namespaced_custom_object(
            info.group, info.version, meta.get("namespace", "default"), info.plural,
            meta["name"], patch,
        )  # fmt: skip
        return ports, updated

    def _plan_context(
        self, namespace: str, ports: dict[str, int], owner: OwnerReference
    ) -> PlanContext:
        def by_name(kind: str, field: str) -> dict[str, str]:
            informer = self.informers[f"{kind}.sedna.io"]
            return {
                o["metadata"]["name"]: o["spec"][field]
                for o in informer.list()
                if o["metadata"].get("namespace") == namespace and field in o.get("spec", {})
            }

        return PlanContext(
            model_urls=by_name("models", "url"),
            dataset_urls=by_name("datasets", "url"),
            node_addresses=self._node_addresses(),
            default_node_address=self.settings.default_node_address,
            ports=ports,
            job_token=self.job_token(owner),
        )

    def _node_addresses(self) -> dict[str, str]:
        addresses: dict[str, str] = {}
        for node in self.informers[NODES].list():
            for address in (node.get("status") or {}).get("addresses") or []:
                if address.get("type") == "InternalIP":
                    addresses[node["metadata"]["name"]] = address["address"]
        return addresses

    def job_token(self, owner: OwnerReference) -> str:
        """The job's weight-exchange token: derived from its uid, so nothing is stored."""
        secret = self.settings.token_secret.get_secret_value().encode()
        return hmac.new(secret, (owner.uid or "").encode(), hashlib.sha256).hexdigest()[:32]

    # -- upstream --------------------------------------------------------------------------

    def apply_upstream(self, topic: UpTopic, envelope: Envelope) -> None:
        """Apply one upstream message (called once per message id by the receiver).

        A payload that is not a valid worker or dataset message is logged, counted and dropped
        (acknowledged), so a bad message cannot be re-sent for ever.
        """
        try:
            self._apply_upstream(topic, envelope)
        except (ValidationError, MalformedMessage) as exc:
            self.metrics.malformed.labels(source="payload").inc()
            log.error(
                "dropping an upstream message with a bad payload: %s",
                exc,
                extra={"node": envelope.node, "kind": topic.kind, "job": topic.name},
            )

    def _apply_upstream(self, topic: UpTopic, envelope: Envelope) -> None:
        self.metrics.upstream.labels(kind=topic.kind).inc()
        payload = envelope.payload
        if payload.get("type") == "dataset":
            message = DatasetMessage.model_validate(payload)
            info = self._find_kind(topic.kind, "sedna.io/v1alpha1")
            self._update_status(
                info, topic.namespace, topic.name, lambda s: _dataset_status(s, message)
            )
            return
        worker = WorkerMessage.model_validate(payload)
        info = self._find_kind(topic.kind, worker.owner_api_version)
        role = _role_of(topic.name, worker.worker)
        stamp = status_rules.now()
        self._update_status(
            info,
            topic.namespace,
            topic.name,
            lambda s: apply_worker_message(info.kind, s, worker, role, stamp),
        )
        if worker.phase is not None:  # counts and conditions follow phases, not reports
            self.queue.add(f"{kind_id(info)}/{topic.namespace}/{topic.name}")

    def _find_kind(self, kind: str, api_version: str | None) -> KindInfo:
        for info in KINDS:
            if info.kind == kind and (api_version is None or info.api_version == api_version):
                return info
        raise MalformedMessage(f"no served kind {kind!r} in {api_version!r}")

    def _update_status(
        self,
        info: KindInfo,
        namespace: str,
        name: str,
        change: Callable[[dict[str, Any]], dict[str, Any]],
    ) -> None:
        """Read-modify-write the status with optimistic concurrency, retrying on conflicts."""
        for attempt in range(STATUS_RETRIES):
            try:
                obj = self._custom.get_namespaced_custom_object_status(
                    info.group, info.version, namespace, info.plural, name
                )
            except ApiException as exc:
                if exc.status == 404:
                    log.info(
                        "upstream message for a deleted resource",
                        extra={"kind": info.kind, "namespace": namespace, "job": name},
                    )
                    return
                raise
            status = change(dict(obj.get("status") or {}))
            if status == (obj.get("status") or {}):
                return
            body = {
                "metadata": {"resourceVersion": obj["metadata"]["resourceVersion"]},
                "status": status,
            }
            try:
                self._custom.patch_namespaced_custom_object_status(
                    info.group, info.version, namespace, info.plural, name, body
                )
                return
            except ApiException as exc:
                if exc.status != 409 or attempt == STATUS_RETRIES - 1:
                    raise

    # -- node state ------------------------------------------------------------------------

    def _on_node_state(self, message: BusMessage) -> None:
        try:
            topic = topics.parse_topic(message.topic)
            if not message.payload:
                return
            state = NodeState.from_bytes(message.payload)
        except (topics.InvalidTopic, MalformedMessage) as exc:
            self.metrics.malformed.labels(source="state").inc()
            log.error("dropping bad node state: %s", exc, extra={"topic": message.topic})
            return
        node = topic.node
        log.info("node %s is %s", node, state.state, extra={"node": node, "state": state.state})
        self.metrics.node_online.labels(node=node).set(1 if state.state == "online" else 0)
        for listener in self.node_listeners:
            listener(node, state.state)
        if self._pods is not None:
            return  # with Pods, the kubelet (KubeEdge's edged) owns the Node and its conditions
        try:
            self._record_node(node, state)
        except ApiException as exc:
            log.warning("could not record node state: %s", exc.reason, extra={"node": node})

    def _record_node(self, node: str, state: NodeState) -> None:
        ready = {
            "type": "Ready",
            "status": "True" if state.state == "online" else "False",
            "reason": "LocalControllerOnline" if state.state == "online" else "LocalControllerGone",
            "lastHeartbeatTime": state.time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "message": f"LC {state.version}".strip(),
        }
        try:
            self._core.read_node(node)
        except ApiException as exc:
            if exc.status != 404:
                raise
            body = {"metadata": {"name": node, "labels": {"sedna.io/lc": "true"}}}
            self._core.create_node(body)
        self._core.patch_node_status(node, {"status": {"conditions": [ready]}})


def planning_inputs(obj: dict[str, Any]) -> str:
    """What worker planning reads from a Model, Dataset or Node (its URL, node, addresses)."""
    spec = obj.get("spec") or {}
    addresses = (obj.get("status") or {}).get("addresses") or []
    return json.dumps(
        [spec.get("url"), spec.get("nodeName"), addresses, obj["metadata"].get("namespace")],
        sort_keys=True,
    )


def _role_of(owner: str, worker: str) -> str | None:
    """The role in a worker name ``<owner>-<role>[-<index>]``."""
    if not worker.startswith(owner + "-"):
        return None
    return worker[len(owner) + 1 :].split("-", 1)[0]


def _dataset_status(status: dict[str, Any], message: DatasetMessage) -> dict[str, Any]:
    stamp = (message.time or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {**status, "numberOfSamples": message.number_of_samples, "updateTime": stamp}
