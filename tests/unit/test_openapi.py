"""The OpenAPI document states the very limits and patterns the API validates with."""

from __future__ import annotations

from typing import Any

import jsonschema_rs
import pytest
from flask import Flask
from hypothesis import assume, given
from hypothesis import strategies as st

from tasks import channels, registry
from tasks.channels import InvalidChannel
from webapp import settings
from webapp.channels.read_model import HISTORY_MAX
from webapp.errors import BadRequest
from webapp.ops.openapi import document
from webapp.query import limit_arg
from webapp.tasks import request as task_request
from webapp.tasks.openapi import NOT_TASK_IDS

# Characters a channel name may hold, and some it may not.
NAME_ALPHABET = "abcXYZ019._:-/ *é\t"


@pytest.fixture(scope="module")
def app(offline_app: Flask) -> Flask:
    return offline_app


@pytest.fixture(scope="module")
def doc(app: Flask) -> dict[str, Any]:
    return document(app.config)


def parameter(doc: dict[str, Any], path: str, method: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(
        p for p in doc["paths"][path][method]["parameters"] if p["name"] == name
    )
    return found


def accepts(schema: dict[str, Any], value: Any) -> bool:
    return bool(jsonschema_rs.validator_for(schema).is_valid(value))


def check_name_accepts(name: str) -> bool:
    try:
        channels.check_name(name)
    except InvalidChannel:
        return False
    return True


def is_reserved(name: str) -> bool:
    lowered = name.lower()
    return (
        lowered.startswith(channels.RESERVED_PREFIXES)
        or lowered.endswith(channels.RESERVED_SUFFIXES)
        or lowered in channels.RESERVED_NAMES
    )


@given(st.text(alphabet=NAME_ALPHABET, max_size=channels.NAME_MAX_CHARS + 2))
def test_the_channel_name_pattern_accepts_the_names_check_name_accepts(
    doc: dict[str, Any], name: str
) -> None:
    assume(not is_reserved(name))  # refused by name, which a pattern does not say
    schema = parameter(doc, "/api/channels/{channel}/messages", "post", "channel")["schema"]
    assert accepts(schema, name) == check_name_accepts(name)


def test_the_channel_name_pattern_holds_at_its_length_limit(doc: dict[str, Any]) -> None:
    schema = parameter(doc, "/api/channels/{channel}/events", "get", "channel")["schema"]
    longest = "a" * channels.NAME_MAX_CHARS
    assert accepts(schema, longest) and check_name_accepts(longest)
    assert not accepts(schema, longest + "a") and not check_name_accepts(longest + "a")


def test_the_message_id_pattern_accepts_new_ids_and_refuses_what_check_message_id_refuses(
    doc: dict[str, Any],
) -> None:
    schema = parameter(doc, "/api/events", "get", "last_event_id")["schema"]
    assert accepts(schema, channels.new_message_id())
    for wrong in ("", "A" * 32, "a" * 31, "a" * 33, "g" * 32):
        assert not accepts(schema, wrong)
        with pytest.raises(InvalidChannel):
            channels.check_message_id(wrong)


def test_a_task_is_read_by_any_id_but_the_other_paths_under_api_tasks(
    app: Flask, doc: dict[str, Any]
) -> None:
    schema = parameter(doc, "/api/tasks/{task_id}", "get", "task_id")["schema"]
    assert accepts(schema, "0b8e5f6c-1d2a-4c59-9f0e-7a1b2c3d4e5f")
    # What the document excludes is what the routing answers elsewhere, and no more.
    routed_elsewhere = {
        rule.rule.removeprefix("/api/tasks/")
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/api/tasks/")
        and "<" not in rule.rule
        and "GET" in (rule.methods or ())
    }
    assert routed_elsewhere == set(NOT_TASK_IDS)
    for name in NOT_TASK_IDS:
        assert not accepts(schema, name)


def test_the_limits_are_the_validators_maximums(doc: dict[str, Any]) -> None:
    for path in ("/api/tasks", "/api/deadletters"):
        limit = parameter(doc, path, "get", "limit")["schema"]
        assert limit["maximum"] == settings.TASK_LIST_MAX
        assert limit["default"] == settings.TASK_LIST_DEFAULT
    history = parameter(doc, "/api/channels/{channel}/messages", "get", "limit")["schema"]
    assert history["maximum"] == HISTORY_MAX
    pattern = parameter(doc, "/api/events", "get", "pattern")["schema"]
    assert pattern["maxLength"] == channels.PATTERN_MAX_CHARS


def test_the_document_states_the_limits_the_app_is_configured_with(app: Flask) -> None:
    configured = document({**app.config, "TASK_LIST_MAX": 20, "MAX_CONTENT_LENGTH": 2048})
    assert parameter(configured, "/api/tasks", "get", "limit")["schema"]["maximum"] == 20
    body = configured["paths"]["/api/tasks"]["post"]["requestBody"]
    assert "2048 bytes" in body["description"]


def test_the_submission_schema_has_the_fields_parse_submission_takes(
    doc: dict[str, Any],
) -> None:
    submission = doc["components"]["schemas"]["Submission"]
    assert list(submission["properties"]) == list(task_request.FIELDS)
    priority = submission["properties"]["priority"]
    assert range(priority["minimum"], priority["maximum"] + 1) == task_request.PRIORITY_RANGE
    assert submission["properties"]["countdown"]["maximum"] == settings.MAX_DELAY_S
    key = parameter(doc, "/api/tasks", "post", "Idempotency-Key")["schema"]
    assert key["maxLength"] == task_request.IDEMPOTENCY_KEY_MAX_CHARS
    body = doc["paths"]["/api/tasks"]["post"]["requestBody"]
    assert f"{settings.MAX_BODY_BYTES} bytes" in body["description"]


def test_string_arguments_state_the_registrys_length_limit(doc: dict[str, Any]) -> None:
    schemas = doc["components"]["schemas"]
    for spec in registry.all_specs():
        arguments = schemas[f"Arguments.{spec.name}"]["properties"]
        for param in spec.params:
            if param.type is str:
                expected = param.bounds.max_length or registry.DEFAULT_MAX_STRING_CHARS
                assert arguments[param.name]["maxLength"] == expected
    assert "maxLength" in schemas["Arguments.always_fails"]["properties"]["message"]


def test_every_mutating_call_documents_the_token_and_rate_limit_answers(
    doc: dict[str, Any],
) -> None:
    for operations in doc["paths"].values():
        for method, operation in operations.items():
            guarded = {"401", "403", "429"} <= set(operation["responses"])
            assert guarded == (method in ("post", "put", "patch", "delete")), (
                method,
                operation["summary"],
            )


@pytest.mark.parametrize("given_limit", ["0", "501", "-1", "1.5", "²", ""])
def test_a_limit_out_of_range_or_not_a_whole_number_is_refused_by_field(
    app: Flask, given_limit: str
) -> None:
    with app.test_request_context(f"/?limit={given_limit}"), pytest.raises(BadRequest) as error:
        limit_arg(default=50, maximum=500)
    assert error.value.field == "limit"
    assert error.value.message == "'limit' must be an integer from 1 to 500"


def test_a_missing_limit_is_the_default_within_the_maximum(app: Flask) -> None:
    with app.test_request_context("/"):
        assert limit_arg(default=50, maximum=500) == 50
        assert limit_arg(default=50, maximum=20) == 20
    with app.test_request_context("/?limit=500"):
        assert limit_arg(default=50, maximum=500) == 500
