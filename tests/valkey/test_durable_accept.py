"""Durable accept: WAIT on a Valkey primary with a Valkey replica
(tests/integration/test_durable_accept.py)."""

from tests.integration.test_durable_accept import *  # noqa: F403
