"""Lua steps by digest, and a Valkey that forgot them (tests/integration/test_script_digests.py)."""

from tests.integration.test_script_digests import *  # noqa: F403
