"""The set of served resource types, changing as CRDs come and go."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass

from apiserver.crds import version_priority
from apiserver.resources import ResourceType


@dataclass(frozen=True)
class GroupInfo:
    """A served API group with its versions, preferred first."""

    name: str
    versions: tuple[str, ...]


class Registry:
    """Thread-safe lookup of resource types by group, version and plural (or kind)."""

    def __init__(self, builtins: Iterable[ResourceType]) -> None:
        self._lock = threading.Lock()
        self._types: dict[tuple[str, str], ResourceType] = {rt.key: rt for rt in builtins}
        self._revision = 0

    @property
    def revision(self) -> int:
        """Bumped on every change; caches of discovery and OpenAPI documents key on it."""
        return self._revision

    def put(self, rt: ResourceType) -> None:
        """Add or replace a type (a CRD created or changed)."""
        with self._lock:
            self._types[rt.key] = rt
            self._revision += 1

    def remove(self, group: str, plural: str) -> None:
        """Stop serving a type (its CRD was deleted)."""
        with self._lock:
            if self._types.pop((group, plural), None) is not None:
                self._revision += 1

    def get(self, group: str, plural: str) -> ResourceType | None:
        """A type by group and plural, whatever its versions."""
        return self._types.get((group, plural))

    def lookup(self, group: str, version: str, plural: str) -> ResourceType | None:
        """A type served at `group/version` under `plural`, or None."""
        rt = self._types.get((group, plural))
        if rt is None or version not in rt.versions:
            return None
        return rt

    def by_kind(self, group: str, version: str, kind: str) -> ResourceType | None:
        """A type served at `group/version` with `kind`, or None."""
        for rt in list(self._types.values()):
            if rt.group == group and rt.kind == kind and version in rt.versions:
                return rt
        return None

    def types(self) -> list[ResourceType]:
        """Every served type."""
        return list(self._types.values())

    def in_group_version(self, group: str, version: str) -> list[ResourceType]:
        """The types served at one group-version, by plural."""
        found = [
            rt for rt in list(self._types.values()) if rt.group == group and version in rt.versions
        ]
        return sorted(found, key=lambda rt: rt.plural)

    def groups(self) -> list[GroupInfo]:
        """Named groups (not the core group) by name; `discovery` puts them in server order."""
        versions: dict[str, set[str]] = {}
        for rt in list(self._types.values()):
            if rt.group:
                versions.setdefault(rt.group, set()).update(rt.versions)
        return [
            GroupInfo(g, tuple(sorted(versions[g], key=version_priority))) for g in sorted(versions)
        ]
