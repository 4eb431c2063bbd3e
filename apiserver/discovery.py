"""API discovery: `/api`, `/apis` (aggregated v2 or legacy), `/api/v1`, `/apis/<g>[/<v>]`."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from apiserver.registry import Registry
from apiserver.resources import STATUS_VERBS, ResourceType

AGGREGATED_V2 = "apidiscovery.k8s.io/v2"
AGGREGATED_V2BETA1 = "apidiscovery.k8s.io/v2beta1"


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
    """`APIGroupDiscoveryList` for `/api` (core) or `/apis` (named groups, canonical first)."""
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
        for group in registry.groups():
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
        "groups": [_group_entry(g.name, g.versions) for g in registry.groups()],
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
