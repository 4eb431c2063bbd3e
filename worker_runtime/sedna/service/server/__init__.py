"""Servers as upstream Sedna's ``sedna.service.server`` exports them.

``AggregationServer`` is the federated aggregation worker (gRPC here, WebSocket upstream) and
``InferenceServer`` serves a model's ``inference`` over HTTP. ``KBServer`` is the lifelong
learning knowledge base (the project's ``kb`` service, what ``sedna kb`` runs).
"""

from __future__ import annotations

import importlib
from typing import Any

from sedna.core.federated_learning import AggregationServer
from sedna.service.server.inference import InferenceServer

__all__ = ["AggregationServer", "InferenceServer", "KBServer"]

_UNSUPPORTED = {
    "AggregationServerV2": "it runs the Plato framework; use AggregationServer "
    "(aggregation='FedAvg', 'FedAvgM', 'FedProx' or 'TrimmedMean')",
}


def __getattr__(name: str) -> Any:
    if name == "KBServer":
        try:
            module = importlib.import_module("sedna.service.server.knowledgeBase.server")
        except ModuleNotFoundError as error:
            if error.name and not error.name.startswith("sedna.service.server.knowledgeBase"):
                raise
            from sedna.service.server.knowledge_base import KBServer

            return KBServer
        return module.KBServer
    if name in _UNSUPPORTED:
        raise ImportError(
            f"sedna.service.server.{name} is not supported: {_UNSUPPORTED[name]}", name=name
        )
    raise AttributeError(f"module 'sedna.service.server' has no attribute {name!r}")
