"""The registry reads parameters from signatures and validates calls against them."""

from __future__ import annotations

import re
import subprocess
import sys
from typing import Annotated

import pytest

import celeryconfig
from tasks import registry, task_modules
from tasks.errors import InvalidArgument
from tasks.registry import Bounds


def resize(
    image: str, width: Annotated[int, Bounds(minimum=1, maximum=4096)] = 800, sharp: bool = False
) -> None:
    """Resize an image."""


SPEC = registry.spec_from_function(
    resize, name="resize", celery_name="x.resize", queue="tasks", bound=False
)


def test_parameters_come_from_the_signature_with_their_bounds_and_defaults() -> None:
    assert [p.to_json() for p in SPEC.params] == [
        {"name": "image", "type": "string", "required": True, "max_length": 10_000},
        {
            "name": "width",
            "type": "integer",
            "required": False,
            "default": 800,
            "minimum": 1,
            "maximum": 4096,
        },
        {"name": "sharp", "type": "boolean", "required": False, "default": False},
    ]
    assert SPEC.description == "Resize an image."


def test_a_call_is_bound_to_keyword_arguments_with_defaults_filled_in() -> None:
    assert SPEC.bind(["cat.png"], {"sharp": True}) == {
        "image": "cat.png",
        "width": 800,
        "sharp": True,
    }


@pytest.mark.parametrize(
    ("args", "kwargs", "field", "words"),
    [
        ([], {}, "image", "is required"),
        ([1], {}, "image", "must be a string, got integer"),
        (["a"], {"width": 0}, "width", "at least 1"),
        (["a"], {"width": 5000}, "width", "at most 4096"),
        (["a"], {"width": 2.5}, "width", "must be an integer, got number"),
        (["a"], {"width": True}, "width", "got boolean"),
        (["a"], {"height": 3}, "height", "no parameter 'height'"),
        (["a"], {"image": "b"}, "image", "given twice"),
        (["a", 1, True, "extra"], {}, "args", "at most 3 arguments"),
        (["x" * 10_001], {}, "image", "at most 10000 long"),
    ],
)
def test_a_bad_call_names_the_field_and_says_what_is_wrong(
    args: list[object], kwargs: dict[str, object], field: str, words: str
) -> None:
    with pytest.raises(InvalidArgument) as raised:
        SPEC.bind(args, kwargs)
    assert raised.value.field == field
    assert words in raised.value.message


def test_a_number_parameter_takes_integers_but_not_infinity() -> None:
    def scale(factor: float) -> None: ...

    spec = registry.spec_from_function(
        scale, name="scale", celery_name="x.scale", queue="tasks", bound=False
    )
    assert spec.bind([2], {}) == {"factor": 2}
    with pytest.raises(InvalidArgument, match="finite"):
        spec.bind([float("inf")], {})


def test_a_parameter_without_a_json_type_is_refused_at_declaration() -> None:
    def bad(when: object) -> None: ...

    with pytest.raises(TypeError, match="not a JSON type"):
        registry.spec_from_function(
            bad, name="bad", celery_name="x.bad", queue="tasks", bound=False
        )


def test_the_shipped_tasks_are_registered_once_their_modules_are_loaded() -> None:
    task_modules.load(celeryconfig.imports)

    assert {"consume", "long_task", "flaky", "always_fails", "noop"} <= {
        s.name for s in registry.all_specs()
    }


def test_importing_tasks_declares_nothing() -> None:
    code = (
        "import sys, tasks; from tasks import registry; "
        "assert not registry.all_specs(); assert 'tasks.jobs' not in sys.modules; "
        "assert 'tasks.celery' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_a_user_task_module_inside_our_packages_is_refused_by_name() -> None:
    with pytest.raises(task_modules.TaskModuleError, match="taskrelay's own package 'tasks'"):
        task_modules.parse("mypkg.jobs, tasks.mine")


def test_a_missing_user_task_module_is_named_in_the_error() -> None:
    with pytest.raises(
        task_modules.TaskModuleError, match=re.escape("'no_such_pkg.jobs' was not found")
    ):
        task_modules.load(task_modules.parse("no_such_pkg.jobs"))


def test_a_user_task_named_like_one_of_ours_is_refused() -> None:
    task_modules.load(celeryconfig.imports)

    def consume(number: int) -> None: ...

    with pytest.raises(
        registry.TaskNameClash,
        match=re.escape(
            "task 'consume' from tests.unit.test_registry clashes with 'consume' "
            "from tasks.jobs; rename one"
        ),
    ):
        registry.register(
            registry.spec_from_function(
                consume, name="consume", celery_name="x.consume", queue="tasks", bound=False
            )
        )


def test_a_task_declared_again_by_the_same_module_is_accepted() -> None:
    task_modules.load(celeryconfig.imports)
    ours = registry.lookup("noop")
    assert ours is not None

    registry.register(ours)

    assert registry.lookup("noop") is ours


def test_a_user_task_identical_to_one_of_ours_but_in_its_own_module_is_refused() -> None:
    task_modules.load(celeryconfig.imports)

    def noop() -> None:
        """Do nothing: the benchmark's unit of work."""

    with pytest.raises(registry.TaskNameClash, match=re.escape("'noop' from tasks.jobs")):
        registry.register(
            registry.spec_from_function(
                noop, name="noop", celery_name="taskrelay.tasks.noop", queue="tasks", bound=False
            )
        )


def test_a_string_parameter_states_the_length_it_is_held_to() -> None:
    declared = {p["name"]: p for p in SPEC.to_json()["params"]}

    assert declared["image"]["max_length"] == registry.DEFAULT_MAX_STRING_CHARS
    assert "max_length" not in declared["width"]
    with pytest.raises(InvalidArgument, match="at most 10000 long"):
        SPEC.bind([], {"image": "x" * (registry.DEFAULT_MAX_STRING_CHARS + 1)})
