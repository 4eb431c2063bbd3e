"""Seen-task learning: task definition, relation discovery and allocation (``ClassType.STP``).

Registered names (upstream's): ``TaskDefinitionByDataAttr``, ``TaskDefinitionBySVC``,
``DefaultTaskRelationDiscover``, ``TaskAllocationByDataAttr``, ``TaskAllocationBySVC``.
"""

from sedna.algorithms.seen_task_learning.artifact import (
    Task,
    TaskGroup,
    concat,
    split_attributes,
    subset,
)
from sedna.algorithms.seen_task_learning.task_allocation import (
    TaskAllocationByDataAttr,
    TaskAllocationBySVC,
    allocation_for,
)
from sedna.algorithms.seen_task_learning.task_definition import (
    DefaultTaskRelationDiscover,
    TaskDefinitionByDataAttr,
    TaskDefinitionBySVC,
)

__all__ = [
    "DefaultTaskRelationDiscover",
    "Task",
    "TaskAllocationByDataAttr",
    "TaskAllocationBySVC",
    "TaskDefinitionByDataAttr",
    "TaskDefinitionBySVC",
    "TaskGroup",
    "allocation_for",
    "concat",
    "split_attributes",
    "subset",
]
