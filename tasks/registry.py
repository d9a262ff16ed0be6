"""The registry of tasks that HTTP may trigger, and validation of their arguments.

A task's parameters are read from its function signature, so the declaration and
the validation can never drift apart. Bounds ride along as ``Annotated`` metadata.
"""

from __future__ import annotations

import inspect
import math
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tasks.errors import InvalidArgument, TaskrelayError

# JSON types a parameter may declare, and the name the API shows for each.
_TYPE_NAMES: dict[type, str] = {
    int: "integer",
    float: "number",
    str: "string",
    bool: "boolean",
    list: "array",
    dict: "object",
}

# A string argument longer than this is refused unless the task says otherwise.
DEFAULT_MAX_STRING_CHARS = 10_000


@dataclass(frozen=True)
class Bounds:
    """Inclusive bounds of a number, or maximum length of a string or array."""

    minimum: float | None = None
    maximum: float | None = None
    max_length: int | None = None


@dataclass(frozen=True)
class Param:
    name: str
    type: type
    required: bool
    default: Any = None
    bounds: Bounds = Bounds()

    @property
    def max_length(self) -> int | None:
        """The longest value accepted: declared, or the default cap for strings."""
        if self.bounds.max_length is None and self.type is str:
            return DEFAULT_MAX_STRING_CHARS
        return self.bounds.max_length

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "name": self.name,
            "type": _TYPE_NAMES[self.type],
            "required": self.required,
        }
        if not self.required:
            doc["default"] = self.default
        if self.bounds.minimum is not None:
            doc["minimum"] = self.bounds.minimum
        if self.bounds.maximum is not None:
            doc["maximum"] = self.bounds.maximum
        if self.max_length is not None:
            doc["max_length"] = self.max_length
        return doc

    def check(self, value: Any) -> Any:
        """Return the value if it fits this parameter, else raise InvalidArgument."""
        if not _is_instance(value, self.type):
            raise InvalidArgument(
                self.name,
                f"'{self.name}' must be {_article(_TYPE_NAMES[self.type])}, "
                f"got {_json_type_name(value)}",
            )
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidArgument(self.name, f"'{self.name}' must be a finite number")
        low, high = self.bounds.minimum, self.bounds.maximum
        if low is not None and value < low:
            raise InvalidArgument(self.name, f"'{self.name}' must be at least {low}")
        if high is not None and value > high:
            raise InvalidArgument(self.name, f"'{self.name}' must be at most {high}")
        if self.max_length is not None and len(value) > self.max_length:
            raise InvalidArgument(
                self.name, f"'{self.name}' must be at most {self.max_length} long"
            )
        return value


class TaskNameClash(TaskrelayError, ValueError):
    """Two task functions share one public name; the message names both modules."""


@dataclass(frozen=True)
class TaskSpec:
    """What HTTP may know about a task: its public name, queue and parameters."""

    name: str
    celery_name: str
    queue: str
    description: str
    params: tuple[Param, ...]
    # The module that declares the task: names the two sides of a clash.
    module: str

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "queue": self.queue,
            "description": self.description,
            "params": [param.to_json() for param in self.params],
        }

    def bind(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """Validate a call and return it as keyword arguments only."""
        if len(args) > len(self.params):
            raise InvalidArgument(
                "args",
                f"{self.name} takes at most {len(self.params)} arguments, got {len(args)}",
            )
        by_name = {param.name: param for param in self.params}
        bound: dict[str, Any] = {}
        for param, value in zip(self.params, args, strict=False):
            bound[param.name] = param.check(value)
        for name, value in kwargs.items():
            if name not in by_name:
                known = ", ".join(by_name) or "none"
                raise InvalidArgument(
                    name, f"{self.name} has no parameter '{name}' (known: {known})"
                )
            if name in bound:
                raise InvalidArgument(name, f"'{name}' is given twice")
            bound[name] = by_name[name].check(value)
        for param in self.params:
            if param.name not in bound:
                if param.required:
                    raise InvalidArgument(param.name, f"'{param.name}' is required")
                bound[param.name] = param.default
        return bound


_REGISTRY: dict[str, TaskSpec] = {}


def register(spec: TaskSpec) -> None:
    """Add a task; the same declaration again is harmless, another one of that name is not.

    Public names share one namespace (HTTP and Celery both use them), so a user's task
    named like one of ours, or like another user's, must be renamed rather than win
    silently in some processes and lose in others.
    """
    known = _REGISTRY.get(spec.name)
    if known is not None and known != spec:
        raise TaskNameClash(
            f"task {spec.name!r} from {spec.module} clashes with {known.name!r} "
            f"from {known.module}; rename one"
        )
    _REGISTRY[spec.name] = spec


def lookup(name: str) -> TaskSpec | None:
    return _REGISTRY.get(name)


def all_specs() -> list[TaskSpec]:
    return sorted(_REGISTRY.values(), key=lambda spec: spec.name)


def route(name: str, *args: Any, **kwargs: Any) -> dict[str, str] | None:
    """A Celery router (``task_routes``): an HTTP task goes to the queue it was declared with.

    Routing here rather than through the task's ``queue`` attribute, which Celery
    deprecates, sends ``.delay()`` and retries from any process to the right queue.
    """
    for spec in _REGISTRY.values():
        if spec.celery_name == name:
            return {"queue": spec.queue}
    return None


def spec_from_function(
    fn: Callable[..., Any], *, name: str, celery_name: str, queue: str, bound: bool
) -> TaskSpec:
    """Build a TaskSpec from a task function's signature and docstring."""
    hints = typing.get_type_hints(fn, include_extras=True)
    params = list(inspect.signature(fn).parameters.values())
    if bound:
        params = params[1:]  # the task instance itself
    return TaskSpec(
        name=name,
        celery_name=celery_name,
        queue=queue,
        description=inspect.getdoc(fn) or "",
        params=tuple(_param_from_signature(p, hints) for p in params),
        module=fn.__module__,
    )


def _param_from_signature(parameter: inspect.Parameter, hints: dict[str, Any]) -> Param:
    if parameter.kind not in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY):
        raise TypeError(f"parameter {parameter.name!r}: only named parameters allowed")
    hint = hints.get(parameter.name)
    if hint is None:
        raise TypeError(f"parameter {parameter.name!r} needs a type annotation")
    bounds = Bounds()
    if typing.get_origin(hint) is typing.Annotated:
        hint, *extras = typing.get_args(hint)
        bounds = next((e for e in extras if isinstance(e, Bounds)), bounds)
    base = typing.get_origin(hint) or hint
    if base not in _TYPE_NAMES:
        raise TypeError(f"parameter {parameter.name!r}: {hint!r} is not a JSON type")
    required = parameter.default is inspect.Parameter.empty
    return Param(
        name=parameter.name,
        type=base,
        required=required,
        default=None if required else parameter.default,
        bounds=bounds,
    )


def _is_instance(value: Any, expected: type) -> bool:
    # JSON has no separate boolean-as-integer; true is never a number here.
    if isinstance(value, bool):
        return expected is bool
    if expected is float:
        return isinstance(value, int | float)
    return isinstance(value, expected)


def _json_type_name(value: Any) -> str:
    if value is None:
        return "null"
    for python_type in (bool, int, float, str, list, dict):
        if isinstance(value, python_type):
            return _TYPE_NAMES[python_type]
    return type(value).__name__


def _article(noun: str) -> str:
    return f"an {noun}" if noun[0] in "aeiou" else f"a {noun}"
