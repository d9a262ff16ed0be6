"""A workflow's JSON description: validated against the registry, compiled into a plan.

A description is a chain, a group or a chord, whose steps are task steps or, nested,
more of the same::

    {"type": "chain", "steps": [
        {"task": "resize", "args": ["img-1"]},
        {"type": "chord",
         "steps": [{"task": "thumbnail", "kwargs": {"width": 64}},
                   {"task": "thumbnail", "kwargs": {"width": 128}}],
         "callback": {"task": "store_all"}}]}

As in Celery's canvas, a step in a chain receives the previous step's result as its
first argument unless it says ``"immutable": true``; each step of a group receives
what the group received, and the group's result is the list of its steps' results;
a chord is a group followed by its callback, which receives that list. Every task
step is checked against the registry as a task submission is, before anything is
sent; an error names the step's place, such as ``steps[2].kwargs.width``.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from tasks import registry
from tasks.errors import InvalidArgument, TaskrelayError
from tasks.registry import TaskSpec
from tasks.workflows.plan import Plan, Shape, Step, leaves

CHAIN, GROUP, CHORD = "chain", "group", "chord"
KINDS = (CHAIN, GROUP, CHORD)
STEP_FIELDS = ("task", "args", "kwargs", "immutable")
COMPOSITE_FIELDS = {
    CHAIN: ("type", "steps"),
    GROUP: ("type", "steps"),
    CHORD: ("type", "steps", "callback"),
}

# Task steps in one workflow, at most. Every step that waits on nothing is sent in
# one MULTI/EXEC with the workflow's record (and every step a group makes ready, with
# the group's bookkeeping); kombu runs a publish batch early once it holds 1,000
# commands, two per message on taskrelay's transport, so 499 messages is the most one
# transaction can hold. A workflow's event stream also subscribes to one channel a step.
MAX_STEPS = 400
# How deep chains, groups and chords may nest; the outermost one is at depth 1.
MAX_DEPTH = 8


class InvalidDescription(TaskrelayError):
    """A description that cannot run; ``field`` says where, such as ``steps[1].task``."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


class UnknownTask(InvalidDescription):
    """A task step names a task the registry does not hold."""


class TooManySteps(InvalidDescription):
    """A description with more than MAX_STEPS task steps."""


def parse(body: Mapping[str, Any], new_task_id: Callable[[], str] | None = None) -> Plan:
    """Validate a whole description and compile it; nothing is sent here."""
    if "task" in body and "type" not in body:
        raise InvalidDescription(
            "type",
            "a workflow is a chain, a group or a chord; send a single task to POST /api/tasks",
        )
    compiler = _Compiler(new_task_id or (lambda: str(uuid.uuid4())))
    output = compiler.node(body, "", incoming=None, depth=1)
    return Plan(steps=tuple(compiler.steps), output=output)


def _at(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


class _Compiler:
    def __init__(self, new_task_id: Callable[[], str]) -> None:
        self.new_task_id = new_task_id
        self.steps: list[Step] = []

    def node(self, node: Any, path: str, incoming: Shape | None, depth: int) -> Shape:
        """Compile one node; return the shape of its result."""
        if not isinstance(node, Mapping):
            raise InvalidDescription(path or "body", "each step must be a JSON object")
        if "type" not in node:
            if "task" not in node:
                raise InvalidDescription(
                    _at(path, "task"),
                    "each step needs 'task' (a task step) or 'type' (chain, group or chord)",
                )
            return self.task_step(node, path, incoming)
        kind = node["type"]
        if kind not in KINDS:
            raise InvalidDescription(_at(path, "type"), f"'type' must be one of {', '.join(KINDS)}")
        if depth > MAX_DEPTH:
            raise InvalidDescription(
                path, f"chains, groups and chords nest at most {MAX_DEPTH} deep"
            )
        _refuse_unknown(node, COMPOSITE_FIELDS[kind], path)
        children = node.get("steps")
        if not isinstance(children, list) or not children:
            raise InvalidDescription(
                _at(path, "steps"), f"a {kind}'s 'steps' must be a non-empty array"
            )
        if kind == CHAIN:
            shape = incoming
            for index, child in enumerate(children):
                shape = self.node(child, _at(path, f"steps[{index}]"), shape, depth + 1)
            assert shape is not None  # a chain has at least one step
            return shape
        header: list[Shape] = [
            self.node(child, _at(path, f"steps[{index}]"), incoming, depth + 1)
            for index, child in enumerate(children)
        ]
        if kind == GROUP:
            return header
        if "callback" not in node:
            raise InvalidDescription(_at(path, "callback"), "a chord needs a 'callback' step")
        return self.node(node["callback"], _at(path, "callback"), header, depth + 1)

    def task_step(self, node: Mapping[str, Any], path: str, incoming: Shape | None) -> Shape:
        _refuse_unknown(node, STEP_FIELDS, path)
        if len(self.steps) >= MAX_STEPS:
            raise TooManySteps(path, f"a workflow has at most {MAX_STEPS} task steps")
        spec = _spec(node.get("task"), _at(path, "task"))
        args, kwargs = node.get("args", []), node.get("kwargs", {})
        immutable = node.get("immutable", False)
        if not isinstance(args, list):
            raise InvalidDescription(_at(path, "args"), "'args' must be an array")
        if not isinstance(kwargs, dict):
            raise InvalidDescription(_at(path, "kwargs"), "'kwargs' must be an object")
        if not isinstance(immutable, bool):
            raise InvalidDescription(_at(path, "immutable"), "'immutable' must be true or false")
        receives = None if immutable else incoming
        _check_call(spec, args, kwargs, path, receives_input=receives is not None)
        step = Step(
            id=str(len(self.steps)),
            path=path,
            task=spec.name,
            task_id=self.new_task_id(),
            args=args,
            kwargs=kwargs,
            input=receives,
            deps=tuple(leaves(incoming)) if incoming is not None else (),
        )
        self.steps.append(step)
        return step.id


def _refuse_unknown(node: Mapping[str, Any], allowed: Sequence[str], path: str) -> None:
    extra = sorted(set(node) - set(allowed))
    if extra:
        raise InvalidDescription(
            _at(path, extra[0]), f"unknown field '{extra[0]}'; allowed: {', '.join(allowed)}"
        )


def _spec(name: Any, field: str) -> TaskSpec:
    if not isinstance(name, str) or not name:
        raise InvalidDescription(field, "'task' must be a task name")
    spec = registry.lookup(name)
    if spec is None:
        known = ", ".join(s.name for s in registry.all_specs())
        raise UnknownTask(field, f"unknown task '{name[:100]}'; known tasks: {known}")
    return spec


def _check_call(
    spec: TaskSpec, args: list[Any], kwargs: dict[str, Any], path: str, *, receives_input: bool
) -> None:
    """Bind the step's own arguments; its first parameter is left for its input."""
    if receives_input:
        if not spec.params:
            raise InvalidDescription(
                _at(path, "task"),
                f"{spec.name} takes no arguments, so it cannot receive the previous result; "
                'give the step "immutable": true',
            )
        first = spec.params[0].name
        if first in kwargs:
            raise InvalidDescription(
                _at(path, f"kwargs.{first}"),
                f"'{first}' receives the previous result; give the step \"immutable\": true "
                "to set it here",
            )
        spec = dataclasses.replace(spec, params=spec.params[1:])
    try:
        spec.bind(args, kwargs)
    except InvalidArgument as error:
        raise InvalidDescription(
            _field_of(error.field, spec, args, kwargs, path), error.message
        ) from None


def _field_of(name: str, spec: TaskSpec, args: list[Any], kwargs: dict[str, Any], path: str) -> str:
    """Where in the step a bad argument was given: by position, by name, or missing."""
    if name == "args":
        return _at(path, "args")
    if name in kwargs:
        return _at(path, f"kwargs.{name}")
    positions = [param.name for param in spec.params[: len(args)]]
    if name in positions:
        return _at(path, f"args[{positions.index(name)}]")
    return _at(path, f"kwargs.{name}")
