"""Options every command that talks to the HTTP API shares: where it is, and the token."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

import click

from taskrelay.client import DEFAULT_URL

F = TypeVar("F", bound=Callable[..., Any])


def api_options(command: F) -> F:
    """Add ``--url`` (TASKRELAY_URL) and ``--token`` (TASKRELAY_API_TOKEN) to a command."""
    command = click.option(
        "--token", default=lambda: os.environ.get("TASKRELAY_API_TOKEN"), help="API bearer token."
    )(command)
    return click.option(
        "--url",
        default=lambda: os.environ.get("TASKRELAY_URL", DEFAULT_URL),
        show_default=DEFAULT_URL,
    )(command)
