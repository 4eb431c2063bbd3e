"""Knowledge management: how new training data updates what is known (``ClassType.KM``).

``UpdateStrategyDefault`` is registered (upstream names it as its default and never registers
it, so every round after the first fails there).
"""

from __future__ import annotations

from typing import Any, Literal

from sedna.algorithms.seen_task_learning.artifact import Task
from sedna.common.class_factory import ClassFactory, ClassType

Decision = Literal["retrain", "new"]


@ClassFactory.register(ClassType.KM, alias="UpdateStrategyDefault")
class UpdateStrategyDefault:
    """A task already known is retrained on its new samples; an unknown one becomes a task."""

    def __init__(self, **_: Any) -> None:
        pass

    def __call__(self, known: set[str], tasks: list[Task]) -> list[tuple[Task, Decision]]:
        return [(task, "retrain" if task.entry in known else "new") for task in tasks]
