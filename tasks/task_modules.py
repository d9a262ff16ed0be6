"""Which modules declare tasks, and loading them: ours, then the user's own.

Celery's ``imports`` setting lists ours; ``taskrelay_task_modules`` (from
``TASKRELAY_TASK_MODULES``) lists the user's. Workers and the web both load the
same list, so a task the web accepts is a task some worker can run. A user's module may not live
inside one of taskrelay's own packages: it would shadow or be shadowed silently.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from typing import Any

from tasks.errors import TaskrelayError

# Top-level names that taskrelay itself installs.
RESERVED_PACKAGES = frozenset({"tasks", "webapp", "taskrelay", "celeryconfig"})


class TaskModuleError(TaskrelayError):
    """A task module that cannot be loaded; the message names it and says why."""


def parse(setting: str) -> tuple[str, ...]:
    """Module names from a comma-separated setting, such as ``mypkg.jobs,other.jobs``."""
    names = tuple(name.strip() for name in setting.split(",") if name.strip())
    for name in names:
        if not all(part.isidentifier() for part in name.split(".")):
            raise TaskModuleError(f"TASKRELAY_TASK_MODULES: {name!r} is not a module name")
        if name.partition(".")[0] in RESERVED_PACKAGES:
            raise TaskModuleError(
                f"TASKRELAY_TASK_MODULES: {name!r} is inside taskrelay's own package "
                f"{name.partition('.')[0]!r}; give your package a name of its own"
            )
    return names


def load(names: Iterable[str]) -> None:
    """Import each module, which declares its tasks (``@http_task``) on every app."""
    for name in names:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as error:
            if error.name is not None and f"{name}.".startswith(f"{error.name}."):
                raise TaskModuleError(
                    f"task module {name!r} was not found; is its package installed?"
                ) from None
            raise


def load_configured(conf: Any) -> None:
    """Load taskrelay's task modules, then the user's, as a Celery app's settings name them."""
    load(conf.imports)
    load(parse(conf.taskrelay_task_modules))
