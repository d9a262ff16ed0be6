"""The task path over HTTP (tests/integration/test_tasks_api.py), on Valkey."""

from tests.integration.test_tasks_api import *  # noqa: F403
