"""Algorithms used by the edge-cloud features: hard example mining, aggregation, compression.

Importing this package registers every algorithm by its upstream Sedna name (as upstream's
``import sedna`` did), including the lifelong learning ones when their packages are built, and
records the upstream names that are refused (``ClassFactory.get_cls`` then says why).
"""

from __future__ import annotations

import importlib
from pathlib import Path

from sedna.algorithms import aggregation, compression, hard_example_mining
from sedna.common.class_factory import ClassFactory, ClassType

_OPTIONAL = (
    "unseen_task_detect",
    "unseen_task_detection",
    "unseen_task_processing",
    "seen_task_learning",
    "knowledge_management",
)
for _name in _OPTIONAL:
    if (Path(__file__).parent / _name).is_dir() or (Path(__file__).parent / f"{_name}.py").exists():
        importlib.import_module(f"{__name__}.{_name}")

_PLATO = "it configures the Plato framework, which is not supported; use FedAvg"
_PROBE = (
    "upstream's rule is inverted (unseen when the model is confident); use TaskAttrFilter or "
    "SampleRecognitionByDistance"
)
for _type, _algorithm, _reason in (
    (ClassType.HEM, "BertRouter", "it needs PyTorch and Hugging Face transformers"),
    (ClassType.FL_AGG, "MistNet", _PLATO),
    (ClassType.FL_AGG, "FedAvgV2", _PLATO),
    (ClassType.UTD, "ModelProbeFilter", _PROBE),
):
    ClassFactory.mark_unsupported(_type, _algorithm, _reason)

__all__ = ["aggregation", "compression", "hard_example_mining"]
