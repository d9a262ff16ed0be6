"""`taskrelay publish` reports what went wrong in the API's own words."""

from __future__ import annotations

from click.testing import CliRunner

from taskrelay.channel_commands import publish
from taskrelay.waiting import free_port


def test_a_channel_the_api_refuses_is_reported_with_the_api_s_message(web: str) -> None:
    result = CliRunner().invoke(publish, ["celery", "1", "--url", web])
    assert result.exit_code == 1
    assert "400: " in result.output
    assert "reserved" in result.output


def test_an_api_that_cannot_be_reached_is_named_in_the_error() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = CliRunner().invoke(publish, ["news", "1", "--url", url])
    assert result.exit_code == 1
    assert f"cannot reach {url}" in result.output
