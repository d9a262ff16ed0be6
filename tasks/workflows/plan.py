"""A compiled workflow: its task steps, what each waits on, and what each receives.

The description's nesting (chains, groups, chords) is flattened into task steps
that wait on other steps. What a step receives as its first argument is a *shape*:
one step's result (that step's id) or a list of shapes (a group's results, in the
group's order). The plan is stored as JSON with the workflow, so the web that
accepted it and every worker that advances it read the same plan.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

# One step's result (its id), or a list of shapes: a group's results, in order.
Shape: TypeAlias = "str | list[Shape]"

# The layout of a stored plan; a worker refuses a plan of another layout.
PLAN_VERSION = 1


class PlanError(ValueError):
    """A stored plan that this code cannot read."""


@dataclass(frozen=True)
class Step:
    """One task step: which task, with what, and what it waits on."""

    # The step's position among the workflow's steps, in description order, as text:
    # the Redis hashes and sets of the workflow hold it.
    id: str
    # Where the step sits in the description, such as ``steps[2].callback``.
    path: str
    task: str
    task_id: str
    args: list[Any]
    kwargs: dict[str, Any]
    # What the step receives as its first argument; None: nothing (the first steps,
    # and immutable ones).
    input: Shape | None
    # The steps that must have succeeded before this one is sent.
    deps: tuple[str, ...]

    @property
    def index(self) -> int:
        return int(self.id)

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "task": self.task,
            "task_id": self.task_id,
            "args": self.args,
            "kwargs": self.kwargs,
            "input": self.input,
            "deps": list(self.deps),
        }


@dataclass(frozen=True)
class Plan:
    steps: tuple[Step, ...]
    # What the workflow's result is made of.
    output: Shape

    def step(self, step_id: str) -> Step:
        return self.steps[int(step_id)]

    def initial(self) -> list[Step]:
        """The steps that wait on nothing: sent when the workflow is accepted."""
        return [step for step in self.steps if not step.deps]

    @functools.cached_property
    def _dependents(self) -> dict[str, tuple[Step, ...]]:
        found: dict[str, list[Step]] = {step.id: [] for step in self.steps}
        for step in self.steps:
            for dep in step.deps:
                found[dep].append(step)
        return {step_id: tuple(steps) for step_id, steps in found.items()}

    def waiting_on(self, step_id: str) -> tuple[Step, ...]:
        """The steps that wait on this one (among others, perhaps)."""
        return self._dependents.get(step_id, ())

    def to_json(self) -> str:
        return json.dumps(
            {
                "v": PLAN_VERSION,
                "output": self.output,
                "steps": [step.to_json() for step in self.steps],
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, raw: str | bytes) -> Plan:
        try:
            data = json.loads(raw)
            if data["v"] != PLAN_VERSION:
                raise PlanError(f"plan layout {data['v']!r}, expected {PLAN_VERSION}")
            steps = tuple(
                Step(
                    id=str(index),
                    path=entry["path"],
                    task=entry["task"],
                    task_id=entry["task_id"],
                    args=entry["args"],
                    kwargs=entry["kwargs"],
                    input=entry["input"],
                    deps=tuple(entry["deps"]),
                )
                for index, entry in enumerate(data["steps"])
            )
            return cls(steps=steps, output=data["output"])
        except (ValueError, KeyError, TypeError) as error:
            raise PlanError(f"unreadable plan: {error}") from None


def leaves(shape: Shape) -> list[str]:
    """The steps a shape is made of, in order."""
    if isinstance(shape, str):
        return [shape]
    return [leaf for part in shape for leaf in leaves(part)]


def materialize(shape: Shape, results: Mapping[str, Any]) -> Any:
    """The value of a shape, from the results of its steps."""
    if isinstance(shape, str):
        return results[shape]
    return [materialize(part, results) for part in shape]
