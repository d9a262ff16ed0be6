"""Schedules over HTTP (tests/integration/test_schedules_api.py), on Valkey."""

from tests.integration.test_schedules_api import *  # noqa: F403
