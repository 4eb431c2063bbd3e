"""Aggregation rules built from job parameters (``Context.get_parameters``)."""

from __future__ import annotations

import inspect

from sedna.algorithms.aggregation import BaseAggregation, get_aggregation
from sedna.common.class_factory import ClassFactory, ClassType
from sedna.common.config import Context


def rule_from_parameters(name: str) -> BaseAggregation:
    """The rule registered as ``name``, each constructor argument taken from the job parameter
    of the same name when set (e.g. ``momentum``, ``server_lr``, ``mu``, ``trim_ratio``)."""
    cls = ClassFactory.get_cls(ClassType.FL_AGG, name)
    params = {}
    for parameter in inspect.signature(cls.__init__).parameters.values():
        if parameter.name == "self" or parameter.kind in (
            inspect.Parameter.VAR_POSITIONAL,
            inspect.Parameter.VAR_KEYWORD,
        ):
            continue
        value = Context.get_parameters(parameter.name)
        if value not in (None, ""):
            params[parameter.name] = value
    return get_aggregation(name, **params)
