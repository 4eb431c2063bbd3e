"""Where a node is, ``cloud`` or ``edge``: the ``location`` label of the metrics (seed 004).

An explicit ``sedna.io/location`` label wins; KubeEdge marks edge nodes with
``node-role.kubernetes.io/edge``; otherwise a node whose name starts with ``cloud`` (``sedna
up``'s ``cloud0``) is in the cloud and every other node is an edge node.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

Location = Literal["cloud", "edge"]
LOCATION_LABEL = "sedna.io/location"
EDGE_ROLE_LABEL = "node-role.kubernetes.io/edge"


def node_location(node: str | None, labels: Mapping[str, str] | None = None) -> Location:
    """The location of ``node`` (with its Node labels, when known)."""
    labels = labels or {}
    explicit = labels.get(LOCATION_LABEL)
    if explicit in ("cloud", "edge"):
        return explicit  # type: ignore[return-value]
    if EDGE_ROLE_LABEL in labels:
        return "edge"
    return "cloud" if (node or "").startswith("cloud") else "edge"
