"""Clear import errors for upstream Sedna modules this library does not provide.

A finder placed last on ``sys.meta_path`` answers only for the names below, and only when no
real module of that name exists (a package built later, e.g. ``sedna.core.lifelong_learning``,
is found first and imported normally). Importing one of them raises ``ModuleNotFoundError``
naming the module and why, instead of the bare "No module named ...".
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from importlib.abc import MetaPathFinder
from importlib.machinery import ModuleSpec
from types import ModuleType

_NOT_BUILT = "is not available in this build of the sedna library"
_PLATO = "runs federated learning on the Plato framework, which is not supported; use "
_PLATO += "sedna.core.federated_learning.FederatedLearning and AggregationServer"

UNSUPPORTED_MODULES: dict[str, str] = {
    "sedna.core.incremental_learning": f"incremental learning (IncrementalLearning) {_NOT_BUILT}",
    "sedna.core.lifelong_learning": f"lifelong learning (LifelongLearning) {_NOT_BUILT}",
    "sedna.service.server.knowledgeBase": f"the knowledge base server (KBServer) {_NOT_BUILT}",
    "sedna.service.run_kb": f"the knowledge base server {_NOT_BUILT}",
    "sedna.algorithms.unseen_task_detect": "upstream's legacy unseen task detection module is "
    "not provided; its algorithms are registered by name from sedna.algorithms."
    "unseen_task_detection (ClassFactory.get_cls(ClassType.UTD, 'TaskAttrFilter'))",
    "sedna.algorithms.unseen_task_detection": f"unseen task detection {_NOT_BUILT}",
    "sedna.algorithms.unseen_task_processing": f"unseen task processing {_NOT_BUILT}",
    "sedna.algorithms.seen_task_learning": f"seen task learning {_NOT_BUILT}",
    "sedna.algorithms.multi_task_learning": "the legacy multi-task learning of lifelong "
    "learning is not supported (upstream superseded it by seen_task_learning)",
    "sedna.core.multi_edge_inference": "multi-edge inference (ReID, video analytics, object "
    "search and tracking) is not supported",
    "sedna.service.multi_edge_inference": "multi-edge inference is not supported",
    "sedna.algorithms.reid": "ReID algorithms (multi-edge inference) are not supported",
    "sedna.algorithms.optical_flow": "optical flow algorithms are not supported",
    "sedna.algorithms.transmitter": _PLATO,
    "sedna.algorithms.client_choose": _PLATO,
    "sedna.datasources.kafka": "Kafka data sources (multi-edge inference) are not supported",
    "sedna.datasources.obs": "Huawei OBS storage is not supported; workers read local paths",
    "sedna.backend.tensorflow": "framework backends are not separate modules here: set "
    "BACKEND_TYPE and use sedna.backend.set_backend, which wraps any estimator",
    "sedna.backend.torch": "framework backends are not separate modules here: set "
    "BACKEND_TYPE and use sedna.backend.set_backend, which wraps any estimator",
    "sedna.backend.mindspore": "framework backends are not separate modules here: set "
    "BACKEND_TYPE and use sedna.backend.set_backend, which wraps any estimator",
}


def unsupported_reason(fullname: str) -> str | None:
    """Why ``fullname`` is not provided, if it is one of them. (A submodule is only looked up
    once its package imported, so listing the packages is enough.)"""
    return UNSUPPORTED_MODULES.get(fullname)


class UnsupportedModuleFinder(MetaPathFinder):
    """Raises a clear ``ModuleNotFoundError`` for upstream modules that are not provided."""

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> ModuleSpec | None:
        """Only called when no other finder found ``fullname``."""
        reason = unsupported_reason(fullname)
        if reason is None:
            return None
        raise ModuleNotFoundError(
            f"{fullname}: upstream Sedna's module is not provided here: {reason} "
            "(see docs/compatibility.md)",
            name=fullname,
        )


def install() -> None:
    """Put the finder last on ``sys.meta_path`` (once)."""
    if not any(isinstance(finder, UnsupportedModuleFinder) for finder in sys.meta_path):
        sys.meta_path.append(UnsupportedModuleFinder())
