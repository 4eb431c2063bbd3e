"""Joint inference: a small edge model answers easy samples, a big cloud model hard ones.

The cloud worker runs :class:`BigModelService`; the edge worker runs :class:`JointInference`.
They speak Sedna's ``POST /predict {"data": ...} -> {"result": ...}`` (see ``protocol``).
"""

from sedna.core.joint_inference.breaker import CircuitBreaker
from sedna.core.joint_inference.client import CloudClient
from sedna.core.joint_inference.edge import InferenceResult, JointInference
from sedna.core.joint_inference.service import BigModelService
from sedna.core.joint_inference.stats import InferenceStats

__all__ = [
    "BigModelService",
    "CircuitBreaker",
    "CloudClient",
    "InferenceResult",
    "InferenceStats",
    "JointInference",
]
