"""Hard example mining: which edge results are uncertain enough to ask the cloud.

Algorithms are registered under ``ClassType.HEM``: ``IBT``, ``CrossEntropy``, ``Threshold``
(alias ``ThresholdFilter``), ``Random``, ``EdgeOnly``, ``CloudOnly``.
"""

from sedna.algorithms.hard_example_mining.base import BaseFilter, FilterParams
from sedna.algorithms.hard_example_mining.config import (
    build_hem,
    hem_config_from_env,
    hem_from_env,
    parse_hem_parameters,
    resolve_hem,
)
from sedna.algorithms.hard_example_mining.filters import (
    CloudOnlyFilter,
    CrossEntropyFilter,
    EdgeOnlyFilter,
    IBTFilter,
    RandomFilter,
    ThresholdFilter,
)

__all__ = [
    "BaseFilter",
    "CloudOnlyFilter",
    "CrossEntropyFilter",
    "EdgeOnlyFilter",
    "FilterParams",
    "IBTFilter",
    "RandomFilter",
    "ThresholdFilter",
    "build_hem",
    "hem_config_from_env",
    "hem_from_env",
    "parse_hem_parameters",
    "resolve_hem",
]
