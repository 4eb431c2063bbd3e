"""The built-in kinds: core/v1 namespaces, nodes, pods, events; leases; CRDs themselves;
and the kinds stored as given (`apiserver.stored`)."""

from __future__ import annotations

from typing import Any

from apiserver.crds import AGE_DESCRIPTION, prepare_crd, validate_crd
from apiserver.resources import ALL_VERBS, Column, ResourceType
from apiserver.stored import STORED_TYPES
from apiserver.table import age

_PRESERVE: dict[str, Any] = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
_STRING: dict[str, Any] = {"type": "string"}
_INT32: dict[str, Any] = {"type": "integer", "format": "int32"}
_MICRO_TIME: dict[str, Any] = {"type": "string", "format": "date-time"}
_STRINGS: dict[str, Any] = {"type": "array", "items": {"type": "string"}}


def _root(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {
            "apiVersion": _STRING,
            "kind": _STRING,
            "metadata": {"type": "object"},
            **properties,
        },
    }
    if required:
        schema["required"] = required
    return schema


def _age_column() -> Column:
    return Column(
        "Age", "date", json_path=".metadata.creationTimestamp", description=AGE_DESCRIPTION
    )


def _get(obj: dict[str, Any], *path: str) -> Any:
    value: Any = obj
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


# --- namespaces -----------------------------------------------------------------------------


def _prepare_namespace(obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    spec = obj.setdefault("spec", {})
    spec.setdefault("finalizers", ["kubernetes"])
    status = obj.setdefault("status", {})
    deleting = bool(_get(obj, "metadata", "deletionTimestamp"))
    status["phase"] = "Terminating" if deleting else "Active"
    labels = obj["metadata"].setdefault("labels", {})
    labels["kubernetes.io/metadata.name"] = obj["metadata"].get("name", "")


NAMESPACES = ResourceType(
    group="",
    versions=("v1",),
    storage_version="v1",
    plural="namespaces",
    singular="namespace",
    kind="Namespace",
    list_kind="NamespaceList",
    namespaced=False,
    short_names=("ns",),
    verbs=("create", "delete", "get", "list", "patch", "update", "watch"),
    status=True,
    schemas={
        "v1": _root(
            {
                "spec": {"type": "object", "properties": {"finalizers": _STRINGS}},
                "status": _PRESERVE,
            }
        )
    },
    columns={
        "v1": (
            Column(
                "Status",
                "string",
                json_path=".status.phase",
                description="The status of the namespace",
            ),
            _age_column(),
        )
    },
    field_labels={"status.phase": lambda o: _get(o, "status", "phase")},
    strategic_merge=True,
    name_is_label=True,
    unconditional_update=True,
    prepare=_prepare_namespace,
    openapi_name="io.k8s.api.core",
)

# --- nodes ----------------------------------------------------------------------------------


def _node_status(node: dict[str, Any]) -> str:
    ready = "Unknown"
    for condition in _get(node, "status", "conditions") or []:
        if condition.get("type") == "Ready":
            ready = "Ready" if condition.get("status") == "True" else "NotReady"
    if _get(node, "spec", "unschedulable"):
        ready += ",SchedulingDisabled"
    return ready


def _node_roles(node: dict[str, Any]) -> str:
    labels = _get(node, "metadata", "labels") or {}
    roles = sorted(
        key.split("/", 1)[1] for key in labels if key.startswith("node-role.kubernetes.io/")
    )
    return ",".join(r for r in roles if r) or "<none>"


def _node_address(kind: str):
    def read(node: dict[str, Any]) -> str:
        for address in _get(node, "status", "addresses") or []:
            if address.get("type") == kind:
                return str(address.get("address"))
        return "<none>"

    return read


NODES = ResourceType(
    group="",
    versions=("v1",),
    storage_version="v1",
    plural="nodes",
    singular="node",
    kind="Node",
    list_kind="NodeList",
    namespaced=False,
    short_names=("no",),
    status=True,
    schemas={"v1": _root({"spec": _PRESERVE, "status": _PRESERVE})},
    columns={
        "v1": (
            Column("Status", "string", compute=_node_status, description="The status of the node"),
            Column("Roles", "string", compute=_node_roles, description="The roles of the node"),
            _age_column(),
            Column(
                "Version",
                "string",
                json_path=".status.nodeInfo.kubeletVersion",
                description="Kubelet Version reported by the node.",
            ),
            Column("Internal-IP", "string", compute=_node_address("InternalIP"), priority=1),
            Column("External-IP", "string", compute=_node_address("ExternalIP"), priority=1),
            Column("OS-Image", "string", json_path=".status.nodeInfo.osImage", priority=1),
            Column(
                "Kernel-Version", "string", json_path=".status.nodeInfo.kernelVersion", priority=1
            ),
            Column(
                "Container-Runtime",
                "string",
                json_path=".status.nodeInfo.containerRuntimeVersion",
                priority=1,
            ),
        )
    },
    field_labels={"spec.unschedulable": lambda o: bool(_get(o, "spec", "unschedulable"))},
    strategic_merge=True,
    unconditional_update=True,
    openapi_name="io.k8s.api.core",
)

# --- pods -----------------------------------------------------------------------------------


def _pod_ready(pod: dict[str, Any]) -> str:
    containers = _get(pod, "spec", "containers") or []
    statuses = _get(pod, "status", "containerStatuses") or []
    ready = sum(1 for s in statuses if s.get("ready"))
    return f"{ready}/{len(containers)}"


def _pod_status(pod: dict[str, Any]) -> str:
    if _get(pod, "metadata", "deletionTimestamp"):
        return "Terminating"
    for status in _get(pod, "status", "containerStatuses") or []:
        waiting = _get(status, "state", "waiting", "reason")
        if waiting:
            return str(waiting)
        terminated = _get(status, "state", "terminated", "reason")
        if terminated:
            return str(terminated)
    return str(_get(pod, "status", "reason") or _get(pod, "status", "phase") or "Unknown")


def _pod_restarts(pod: dict[str, Any]) -> int:
    return sum(
        int(s.get("restartCount") or 0) for s in _get(pod, "status", "containerStatuses") or []
    )


def _prepare_pod(obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    status = obj.setdefault("status", {})
    status.setdefault("phase", "Pending")


_CONTAINER = {
    "type": "object",
    "required": ["name", "image"],
    "x-kubernetes-preserve-unknown-fields": True,
    "properties": {"name": _STRING, "image": _STRING},
}

PODS = ResourceType(
    group="",
    versions=("v1",),
    storage_version="v1",
    plural="pods",
    singular="pod",
    kind="Pod",
    list_kind="PodList",
    namespaced=True,
    short_names=("po",),
    categories=("all",),
    status=True,
    schemas={
        "v1": _root(
            {
                "spec": {
                    "type": "object",
                    "required": ["containers"],
                    "x-kubernetes-preserve-unknown-fields": True,
                    "properties": {
                        "containers": {"type": "array", "items": _CONTAINER},
                        "nodeName": _STRING,
                    },
                },
                "status": _PRESERVE,
            },
            required=["spec"],
        )
    },
    columns={
        "v1": (
            Column(
                "Ready",
                "string",
                compute=_pod_ready,
                description="The aggregate readiness state of this pod for accepting traffic.",
            ),
            Column(
                "Status",
                "string",
                compute=_pod_status,
                description="The aggregate status of the containers in this pod.",
            ),
            Column(
                "Restarts",
                "string",
                compute=lambda p: str(_pod_restarts(p)),
                description="The number of times the containers in this pod have been restarted.",
            ),
            _age_column(),
            Column(
                "IP",
                "string",
                json_path=".status.podIP",
                priority=1,
                description="The IP address assigned to the pod",
            ),
            Column(
                "Node",
                "string",
                json_path=".spec.nodeName",
                priority=1,
                description="The name of the node the pod is scheduled to",
            ),
        )
    },
    field_labels={
        "spec.nodeName": lambda o: _get(o, "spec", "nodeName"),
        "spec.restartPolicy": lambda o: _get(o, "spec", "restartPolicy"),
        "spec.schedulerName": lambda o: _get(o, "spec", "schedulerName"),
        "spec.serviceAccountName": lambda o: _get(o, "spec", "serviceAccountName"),
        "spec.hostNetwork": lambda o: bool(_get(o, "spec", "hostNetwork")),
        "status.phase": lambda o: _get(o, "status", "phase"),
        "status.podIP": lambda o: _get(o, "status", "podIP"),
        "status.nominatedNodeName": lambda o: _get(o, "status", "nominatedNodeName"),
    },
    strategic_merge=True,
    unconditional_update=True,
    prepare=_prepare_pod,
    openapi_name="io.k8s.api.core",
)

# --- events ---------------------------------------------------------------------------------


def _event_last_seen(event: dict[str, Any]) -> str | None:
    moment = (
        event.get("lastTimestamp")
        or _get(event, "series", "lastObservedTime")
        or event.get("eventTime")
        or event.get("firstTimestamp")
        or _get(event, "metadata", "creationTimestamp")
    )
    return age(moment)


def _event_object(event: dict[str, Any]) -> str:
    involved = event.get("involvedObject") or {}
    return f"{str(involved.get('kind') or '').lower()}/{involved.get('name') or ''}"


def _involved(key: str):
    return lambda o: _get(o, "involvedObject", key)


EVENTS = ResourceType(
    group="",
    versions=("v1",),
    storage_version="v1",
    plural="events",
    singular="event",
    kind="Event",
    list_kind="EventList",
    namespaced=True,
    short_names=("ev",),
    schemas={
        "v1": _root(
            {
                "involvedObject": _PRESERVE,
                "reason": _STRING,
                "message": _STRING,
                "source": _PRESERVE,
                "firstTimestamp": {"type": "string", "format": "date-time", "nullable": True},
                "lastTimestamp": {"type": "string", "format": "date-time", "nullable": True},
                "eventTime": {"type": "string", "format": "date-time", "nullable": True},
                "count": _INT32,
                "type": _STRING,
                "series": _PRESERVE,
                "action": _STRING,
                "related": _PRESERVE,
                "reportingComponent": _STRING,
                "reportingInstance": _STRING,
            },
            required=["involvedObject"],
        )
    },
    columns={
        "v1": (
            Column("Last Seen", "string", compute=_event_last_seen),
            Column("Type", "string", json_path=".type"),
            Column("Reason", "string", json_path=".reason"),
            Column("Object", "string", compute=_event_object),
            Column("Message", "string", json_path=".message"),
            Column("Source", "string", json_path=".source.component", priority=1),
            Column("Count", "string", json_path=".count", priority=1),
        )
    },
    field_labels={
        "involvedObject.kind": _involved("kind"),
        "involvedObject.namespace": _involved("namespace"),
        "involvedObject.name": _involved("name"),
        "involvedObject.uid": _involved("uid"),
        "involvedObject.apiVersion": _involved("apiVersion"),
        "involvedObject.resourceVersion": _involved("resourceVersion"),
        "involvedObject.fieldPath": _involved("fieldPath"),
        "reason": lambda o: o.get("reason"),
        "reportingComponent": lambda o: o.get("reportingComponent"),
        "source": lambda o: _get(o, "source", "component"),
        "type": lambda o: o.get("type"),
    },
    strategic_merge=True,
    unconditional_update=True,
    openapi_name="io.k8s.api.core",
)

# --- leases ---------------------------------------------------------------------------------

LEASES = ResourceType(
    group="coordination.k8s.io",
    versions=("v1",),
    storage_version="v1",
    plural="leases",
    singular="lease",
    kind="Lease",
    list_kind="LeaseList",
    namespaced=True,
    schemas={
        "v1": _root(
            {
                "spec": {
                    "type": "object",
                    "properties": {
                        "holderIdentity": {"type": "string", "nullable": True},
                        "leaseDurationSeconds": {**_INT32, "nullable": True},
                        "acquireTime": {**_MICRO_TIME, "nullable": True},
                        "renewTime": {**_MICRO_TIME, "nullable": True},
                        "leaseTransitions": {**_INT32, "nullable": True},
                        "strategy": {"type": "string", "nullable": True},
                        "preferredHolder": {"type": "string", "nullable": True},
                    },
                }
            }
        )
    },
    columns={
        "v1": (
            Column(
                "Holder",
                "string",
                json_path=".spec.holderIdentity",
                description="The holder of the lease",
            ),
            _age_column(),
        )
    },
    strategic_merge=True,
    unconditional_update=True,
    openapi_name="io.k8s.api.coordination",
)

# --- customresourcedefinitions --------------------------------------------------------------

_PRINTER_COLUMN = {
    "type": "object",
    "required": ["name", "type", "jsonPath"],
    "properties": {
        "name": _STRING,
        "type": _STRING,
        "format": _STRING,
        "description": _STRING,
        "priority": _INT32,
        "jsonPath": _STRING,
    },
}
_CRD_VERSION = {
    "type": "object",
    "required": ["name", "served", "storage"],
    "properties": {
        "name": _STRING,
        "served": {"type": "boolean"},
        "storage": {"type": "boolean"},
        "deprecated": {"type": "boolean"},
        "deprecationWarning": _STRING,
        "schema": {"type": "object", "properties": {"openAPIV3Schema": _PRESERVE}},
        "subresources": {
            "type": "object",
            "properties": {"status": _PRESERVE, "scale": _PRESERVE},
        },
        "additionalPrinterColumns": {"type": "array", "items": _PRINTER_COLUMN},
        "selectableFields": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["jsonPath"],
                "properties": {"jsonPath": _STRING},
            },
        },
    },
}
CRD_SCHEMA = _root(
    {
        "spec": {
            "type": "object",
            "required": ["group", "names", "scope", "versions"],
            "properties": {
                "group": _STRING,
                "names": {
                    "type": "object",
                    "required": ["plural", "kind"],
                    "properties": {
                        "plural": _STRING,
                        "singular": _STRING,
                        "kind": _STRING,
                        "listKind": _STRING,
                        "shortNames": _STRINGS,
                        "categories": _STRINGS,
                    },
                },
                "scope": {"type": "string", "enum": ["Cluster", "Namespaced"]},
                "versions": {"type": "array", "items": _CRD_VERSION},
                "conversion": _PRESERVE,
                "preserveUnknownFields": {"type": "boolean"},
            },
        },
        "status": _PRESERVE,
    },
    required=["spec"],
)

CUSTOM_RESOURCE_DEFINITIONS = ResourceType(
    group="apiextensions.k8s.io",
    versions=("v1",),
    storage_version="v1",
    plural="customresourcedefinitions",
    singular="customresourcedefinition",
    kind="CustomResourceDefinition",
    list_kind="CustomResourceDefinitionList",
    namespaced=False,
    short_names=("crd", "crds"),
    categories=("api-extensions",),
    verbs=ALL_VERBS,
    status=True,
    schemas={"v1": CRD_SCHEMA},
    columns={
        "v1": (
            Column(
                "Created At", "date", compute=lambda o: _get(o, "metadata", "creationTimestamp")
            ),
        )
    },
    strategic_merge=True,
    unconditional_update=True,
    prepare=prepare_crd,
    extra_validation=validate_crd,
    openapi_name="io.k8s.apiextensions-apiserver.pkg.apis.apiextensions",
)

BUILTIN_TYPES: tuple[ResourceType, ...] = (
    NAMESPACES,
    NODES,
    PODS,
    EVENTS,
    LEASES,
    CUSTOM_RESOURCE_DEFINITIONS,
    *STORED_TYPES,
)

# Namespaces that exist on a fresh server; the first three cannot be deleted.
INITIAL_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
PROTECTED_NAMESPACES = frozenset({"default", "kube-system", "kube-public"})
