"""Workflow descriptions compile into steps that wait on each other and receive results
as Celery's canvas passes them; every error names the step's place in the description."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

import tasks.jobs  # noqa: F401  (registers the built-in tasks)
import tests.workflow_tasks  # noqa: F401  (registers add, total, record_step, collect)
from tasks.workflows import description
from tasks.workflows.description import InvalidDescription, TooManySteps, UnknownTask
from tasks.workflows.plan import Plan, materialize


def add(*args: int, **kwargs: Any) -> dict[str, Any]:
    return {"task": "add", "args": list(args), "kwargs": kwargs}


def chain(*steps: dict[str, Any]) -> dict[str, Any]:
    return {"type": "chain", "steps": list(steps)}


def group(*steps: dict[str, Any]) -> dict[str, Any]:
    return {"type": "group", "steps": list(steps)}


def compile_(body: dict[str, Any]) -> Plan:
    ids = itertools.count()
    return description.parse(body, new_task_id=lambda: f"task-{next(ids)}")


def refusal(body: dict[str, Any]) -> InvalidDescription:
    with pytest.raises(InvalidDescription) as caught:
        compile_(body)
    return caught.value


def test_each_step_of_a_chain_receives_the_previous_result_and_waits_on_it() -> None:
    plan = compile_(chain(add(1, 2), add(10), add(y=100)))
    first, second, third = plan.steps
    assert (first.input, first.deps) == (None, ())
    assert (second.input, second.deps) == ("0", ("0",))
    assert (third.input, third.deps) == ("1", ("1",))
    assert plan.output == "2"
    assert [step.task_id for step in plan.steps] == ["task-0", "task-1", "task-2"]
    assert [step.path for step in plan.steps] == ["steps[0]", "steps[1]", "steps[2]"]


def test_an_immutable_step_receives_nothing_but_still_waits_its_turn() -> None:
    plan = compile_(chain(add(1, 2), {**add(5, 5), "immutable": True}, add()))
    assert plan.steps[1].input is None
    assert plan.steps[1].deps == ("0",)
    assert plan.steps[2].input == "1"


def test_a_group_passes_on_what_it_received_and_the_next_step_gets_the_list() -> None:
    plan = compile_(chain(add(1, 1), group(add(), chain(add(), add())), {"task": "total"}))
    assert [step.input for step in plan.steps[1:4]] == ["0", "0", "2"]
    totalled = plan.steps[4]
    assert totalled.input == ["1", "3"]
    assert totalled.deps == ("1", "3")
    assert plan.waiting_on("3") == (totalled,)
    assert plan.initial() == [plan.steps[0]]


def test_a_chord_callback_receives_its_header_results_in_order() -> None:
    body = {
        "type": "chord",
        "steps": [add(1), add(2), group(add(3), add(4))],
        "callback": {"task": "total"},
    }
    plan = compile_(body)
    callback = plan.steps[-1]
    assert callback.path == "callback"
    assert callback.input == ["0", "1", ["2", "3"]]
    assert materialize(callback.input, {"0": 1, "1": 2, "2": 3, "3": 4}) == [1, 2, [3, 4]]
    assert [step.id for step in plan.initial()] == ["0", "1", "2", "3"]


def test_a_plan_reads_back_as_it_was_stored() -> None:
    plan = compile_({"type": "chord", "steps": [add(1), add(2)], "callback": {"task": "total"}})
    assert Plan.from_json(plan.to_json()) == plan


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (chain(add(1), add("x")), "steps[1].args[0]"),
        (chain(add(x="a")), "steps[0].kwargs.x"),
        (chain(add(1, 2, 3)), "steps[0].args"),
        (chain({"task": "add"}), "steps[0].kwargs.x"),
        (chain(add(1, z=1)), "steps[0].kwargs.z"),
        (chain(add(1), group(add(), add(y="w"))), "steps[1].steps[1].kwargs.y"),
        ({"type": "chord", "steps": [add(1)], "callback": add(1, 2)}, "callback.args"),
        (chain(add(1), {"task": "add", "kwargs": {"x": 2}}), "steps[1].kwargs.x"),
        (chain(add(1), {"task": "noop"}), "steps[1].task"),
        (chain({"task": "add", "args": [1], "colour": "red"}), "steps[0].colour"),
        (chain({**add(1), "immutable": "yes"}), "steps[0].immutable"),
        (chain({"args": [1]}), "steps[0].task"),
        (chain(add(1), "add"), "steps[1]"),
        ({"type": "chain", "steps": []}, "steps"),
        ({"type": "loop", "steps": [add(1)]}, "type"),
        ({"type": "group", "steps": [add(1)], "callback": add(1)}, "callback"),
        ({"type": "chord", "steps": [add(1)]}, "callback"),
        (add(1), "type"),
    ],
)
def test_a_bad_step_is_refused_with_its_place_in_the_description(
    body: dict[str, Any], field: str
) -> None:
    assert refusal(body).field == field


def test_an_unknown_task_is_refused_as_unknown_naming_the_known_ones() -> None:
    error = refusal(chain(add(1), {"task": "nope"}))
    assert isinstance(error, UnknownTask)
    assert error.field == "steps[1].task"
    assert "known tasks:" in error.message and "add" in error.message


def test_more_steps_than_the_limit_are_refused_as_too_large() -> None:
    body = group(*[add(n) for n in range(description.MAX_STEPS + 1)])
    error = refusal(body)
    assert isinstance(error, TooManySteps)
    assert error.field == f"steps[{description.MAX_STEPS}]"
    assert len(compile_(group(*[add(n) for n in range(description.MAX_STEPS)])).steps) == 400


def test_nesting_deeper_than_the_limit_is_refused_where_it_goes_too_deep() -> None:
    body: dict[str, Any] = add(1)
    for _ in range(description.MAX_DEPTH):
        body = chain(body)
    assert len(compile_(body).steps) == 1
    error = refusal(chain(body))
    assert error.field == ".".join(["steps[0]"] * description.MAX_DEPTH)
    assert str(description.MAX_DEPTH) in error.message
