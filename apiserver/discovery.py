"""API discovery: `/api`, `/apis` (aggregated v2 or legacy), `/api/v1`, `/apis/<g>[/<v>]`."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from apiserver.registry import GroupInfo, Registry
from apiserver.resources import STATUS_VERBS, ResourceType

AGGREGATED_V2 = "apidiscovery.k8s.io/v2"
AGGREGATED_V2BETA1 = "apidiscovery.k8s.io/v2beta1"

# Groups are listed in the order a real kube-apiserver lists them, because kubectl maps a bare
# plural, singular or short name to the first group that serves it. That order is the group
# priority, highest first (kube-aggregator's `APIVersionPriorities` for built-in groups; every CRD
# group gets `GroupPriorityMinimum: 1000` from the crdregistration controller, so custom groups
# come after the built-ins), ties broken by name: the group name in aggregated discovery, the
# APIService name `<version>.<group>` in the legacy `APIGroupList`. So CRD groups are
# alphabetical (edgeai.io, neptune.io, sedna.io) and a name shared by two of them would mean the
# legacy kind; `apis.registry` shares none.
GROUP_PRIORITIES = {
    "apps": 17800,
    "events.k8s.io": 17750,
    "authentication.k8s.io": 17700,
    "authorization.k8s.io": 17600,
    "autoscaling": 17500,
    "batch": 17400,
    "certificates.k8s.io": 17300,
    "networking.k8s.io": 17200,
    "policy": 17100,
    "rbac.authorization.k8s.io": 17000,
    "storage.k8s.io": 16800,
    "admissionregistration.k8s.io": 16700,
    "apiextensions.k8s.io": 16700,
    "scheduling.k8s.io": 16600,
    "coordination.k8s.io": 16500,
    "node.k8s.io": 16300,
    "discovery.k8s.io": 16200,
    "flowcontrol.apiserver.k8s.io": 16100,
}
CRD_GROUP_PRIORITY = 1000


def in_server_order(groups: list[GroupInfo], *, aggregated: bool) -> list[GroupInfo]:
    """``groups`` in the order a real kube-apiserver lists them (see ``GROUP_PRIORITIES``)."""

    def key(group: GroupInfo) -> tuple[int, str]:
        priority = GROUP_PRIORITIES.get(group.name, CRD_GROUP_PRIORITY)
        tie = group.name if aggregated else min(f"{v}.{group.name}" for v in group.versions)
        return (-priority, tie)

    return sorted(groups, key=key)


def aggregated_version(accept: str) -> str | None:
    """The aggregated discovery version the Accept header asks for, if any (v2 preferred)."""
    lowered = accept.replace(" ", "").lower()
    if "as=apigroupdiscoverylist" not in lowered:
        return None
    for media in lowered.split(","):
        if "g=apidiscovery.k8s.io" in media and "as=apigroupdiscoverylist" in media:
            if "v=v2beta1" in media:
                continue
            if "v=v2" in media:
                return AGGREGATED_V2
    if "v=v2beta1" in lowered:
        return AGGREGATED_V2BETA1
    return None


def aggregated_content_type(api_version: str) -> str:
    """The Content-Type of an aggregated discovery answer."""
    version = api_version.split("/")[1]
    return f"application/json;g=apidiscovery.k8s.io;v={version};as=APIGroupDiscoveryList"


def storage_version_hash(rt: ResourceType) -> str:
    """A short stable hash of the storage group/version/kind, as the real server reports."""
    digest = hashlib.sha256(f"{rt.group}/{rt.storage_version}/{rt.kind}".encode()).digest()
    return base64.b64encode(digest[:8]).decode()


def _aggregated_resource(rt: ResourceType, version: str) -> dict[str, Any]:
    kind = {"group": rt.group, "version": version, "kind": rt.kind}
    entry: dict[str, Any] = {
        "resource": rt.plural,
        "responseKind": kind,
        "scope": "Namespaced" if rt.namespaced else "Cluster",
        "singularResource": rt.singular,
        "verbs": list(rt.verbs),
    }
    if rt.short_names:
        entry["shortNames"] = list(rt.short_names)
    if rt.categories:
        entry["categories"] = list(rt.categories)
    if rt.status:
        entry["subresources"] = [
            {"subresource": "status", "responseKind": kind, "verbs": list(STATUS_VERBS)}
        ]
    return entry


def aggregated(
    registry: Registry, *, core: bool, api_version: str = AGGREGATED_V2
) -> dict[str, Any]:
    """`APIGroupDiscoveryList` for `/api` (core) or `/apis` (named groups, in server order)."""
    items = []
    if core:
        resources = [_aggregated_resource(rt, "v1") for rt in registry.in_group_version("", "v1")]
        items.append(
            {
                "metadata": {},
                "versions": [{"version": "v1", "resources": resources, "freshness": "Current"}],
            }
        )
    else:
        for group in in_server_order(registry.groups(), aggregated=True):
            versions = []
            for version in group.versions:
                resources = [
                    _aggregated_resource(rt, version)
                    for rt in registry.in_group_version(group.name, version)
                ]
                versions.append(
                    {"version": version, "resources": resources, "freshness": "Current"}
                )
            items.append({"metadata": {"name": group.name}, "versions": versions})
    return {
        "kind": "APIGroupDiscoveryList",
        "apiVersion": api_version,
        "metadata": {},
        "items": items,
    }


def api_versions(server_address: str) -> dict[str, Any]:
    """Legacy `/api`: `APIVersions`."""
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [
            {"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}
        ],
    }


def _group_entry(name: str, versions: tuple[str, ...]) -> dict[str, Any]:
    listed = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {"name": name, "versions": listed, "preferredVersion": listed[0]}


def api_group_list(registry: Registry) -> dict[str, Any]:
    """Legacy `/apis`: `APIGroupList`."""
    return {
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [
            _group_entry(g.name, g.versions)
            for g in in_server_order(registry.groups(), aggregated=False)
        ],
    }


def api_group(registry: Registry, name: str) -> dict[str, Any] | None:
    """`/apis/<group>`: `APIGroup`, or None when the group is not served."""
    for group in registry.groups():
        if group.name == name:
            return {"kind": "APIGroup", "apiVersion": "v1", **_group_entry(name, group.versions)}
    return None


def api_resource_list(registry: Registry, group: str, version: str) -> dict[str, Any] | None:
    """`/api/v1` or `/apis/<g>/<v>`: `APIResourceList`, or None when not served."""
    types = registry.in_group_version(group, version)
    if not types:
        return None
    resources: list[dict[str, Any]] = []
    for rt in types:
        entry: dict[str, Any] = {
            "name": rt.plural,
            "singularName": rt.singular,
            "namespaced": rt.namespaced,
            "kind": rt.kind,
            "verbs": list(rt.verbs),
        }
        if rt.short_names:
            entry["shortNames"] = list(rt.short_names)
        if rt.categories:
            entry["categories"] = list(rt.categories)
        entry["storageVersionHash"] = storage_version_hash(rt)
        resources.append(entry)
        if rt.status:
            resources.append(
                {
                    "name": f"{rt.plural}/status",
                    "singularName": "",
                    "namespaced": rt.namespaced,
                    "kind": rt.kind,
                    "verbs": list(STATUS_VERBS),
                }
            )
    group_version = f"{group}/{version}" if group else version
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    }
