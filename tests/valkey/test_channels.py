"""Channels: publish, relay, history and event streams (tests/integration/test_channels_api.py),
on Valkey."""

from tests.integration.test_channels_api import *  # noqa: F403
