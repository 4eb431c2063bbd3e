"""Built-in kinds the embedded server stores but does not act on.

So that ``kubectl apply -k deploy/cluster`` (and ``--dry-run=server``) works here as on a real
cluster: ServiceAccounts, ConfigMaps, Secrets, Services, Deployments, DaemonSets, StatefulSets
and RBAC objects, under their real names, short names and categories. Nothing runs them and
their content is not checked beyond being an object (``tests/test_cluster_manifests.py``
checks it against the Kubernetes schemas offline).
"""

from __future__ import annotations

from typing import Any

from apiserver.resources import ResourceType

_ANY_OBJECT: dict[str, Any] = {
    "type": "object",
    "x-kubernetes-preserve-unknown-fields": True,
    "properties": {"apiVersion": {"type": "string"}, "kind": {"type": "string"}},
}


def _stored(
    group: str,
    plural: str,
    kind: str,
    *,
    namespaced: bool = True,
    short_names: tuple[str, ...] = (),
    categories: tuple[str, ...] = (),
    status: bool = False,
) -> ResourceType:
    """A v1 resource type whose objects are stored as given."""
    return ResourceType(
        group=group,
        versions=("v1",),
        storage_version="v1",
        plural=plural,
        singular=kind.lower(),
        kind=kind,
        list_kind=f"{kind}List",
        namespaced=namespaced,
        short_names=short_names,
        categories=categories,
        status=status,
        schemas={"v1": _ANY_OBJECT},
        strategic_merge=True,
        openapi_name="io.k8s.api." + (group.split(".")[0] if group else "core"),
    )


_RBAC = "rbac.authorization.k8s.io"

STORED_TYPES: tuple[ResourceType, ...] = (
    _stored("", "serviceaccounts", "ServiceAccount", short_names=("sa",)),
    _stored("", "configmaps", "ConfigMap", short_names=("cm",)),
    _stored("", "secrets", "Secret"),
    _stored("", "services", "Service", short_names=("svc",), categories=("all",), status=True),
    _stored(
        "apps",
        "deployments",
        "Deployment",
        short_names=("deploy",),
        categories=("all",),
        status=True,
    ),
    _stored(
        "apps", "daemonsets", "DaemonSet", short_names=("ds",), categories=("all",), status=True
    ),
    _stored(
        "apps",
        "statefulsets",
        "StatefulSet",
        short_names=("sts",),
        categories=("all",),
        status=True,
    ),
    _stored(_RBAC, "clusterroles", "ClusterRole", namespaced=False),
    _stored(_RBAC, "clusterrolebindings", "ClusterRoleBinding", namespaced=False),
    _stored(_RBAC, "roles", "Role"),
    _stored(_RBAC, "rolebindings", "RoleBinding"),
)
