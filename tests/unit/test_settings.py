"""The web's settings from TASKRELAY_* variables: text stays text, numbers are numbers."""

from __future__ import annotations

import pytest
from flask import Config

from webapp import settings


def test_a_numeric_token_stays_text_and_a_number_setting_is_parsed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TASKRELAY_API_TOKENS", "12345")
    monkeypatch.setenv("TASKRELAY_RATE_LIMIT", "true")
    monkeypatch.setenv("TASKRELAY_TASK_LIST_MAX", "20")
    config = Config(".")
    config.from_mapping(settings.defaults())

    settings.load_environment(config)

    assert config["API_TOKENS"] == "12345"
    assert config["RATE_LIMIT"] == "true"
    assert config["TASK_LIST_MAX"] == 20
