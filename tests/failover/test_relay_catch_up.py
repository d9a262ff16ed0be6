"""A channel message still pending on the new primary after a promotion is relayed
within seconds, not after the sweeper's minute.

In a ``SENTINEL FAILOVER`` the relay task may append a message on the old primary
(its client has not moved yet) while its acknowledgement reaches the new one: the
new primary holds the message as pending, with no relay task left for it. Here
that message is made directly, replicated before the switch, under a relay worker
whose sweeper waits its default minute for messages the broker lost.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tasks import channels, keys
from tasks.celery_ext import relay_sweeper
from tasks.channels import log as channel_log
from tests.failover.cluster import SentinelGroup, wait_promoted
from tests.support import start_worker, stop, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

PROMOTION_TIMEOUT_S = 30.0
# The sweeper notices the promotion at its next run, then lets every client follow.
CATCH_UP_TIMEOUT_S = 3 * relay_sweeper.SWEEP_INTERVAL_S + relay_sweeper.CATCH_UP_DELAY_S + 5
REPLICATION_TIMEOUT_MS = 5_000


@pytest.fixture
def group(tmp_path: Path) -> Iterator[SentinelGroup]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("no redis-server here")
    group = SentinelGroup(binary, tmp_path / "servers")
    group.start()
    try:
        yield group
    finally:
        group.stop()


def test_a_message_left_pending_by_a_promotion_is_relayed_within_seconds(
    group: SentinelGroup, log_dir: Path
) -> None:
    relay = start_worker("relay", group.url, log_dir, concurrency=1)
    try:
        channel = "promoted.pending"
        pending = channel_log.Pending(
            channel=channel,
            message_id=channels.new_message_id(),
            data="kept",
            published_at="2030-01-01T00:00:00+00:00",
            retention=100,
        )
        with contextlib.closing(group.primary.client()) as primary:
            channel_log.remember_pending(primary, pending, time.time())
            assert primary.wait(1, REPLICATION_TIMEOUT_MS) == 1, "the replica holds the message"

        wait_until(group.replica_ready, timeout_s=PROMOTION_TIMEOUT_S, what="a promotable replica")
        group.failover()
        wait_promoted(group, group.replica.port, PROMOTION_TIMEOUT_S)
        promoted_at = time.monotonic()
        group.swap_roles()

        with contextlib.closing(group.primary.client()) as new_primary:
            stream = keys.channel_stream(channel)
            wait_until(
                lambda: new_primary.xlen(stream) == 1,
                timeout_s=CATCH_UP_TIMEOUT_S,
                interval_s=0.2,
                what="the pending message relayed on the new primary",
            )
            relayed_after_s = time.monotonic() - promoted_at
            assert new_primary.hget(keys.RELAY_PENDING, pending.message_id) is None
        # Well before the sweeper's minute for a message the broker lost.
        assert relayed_after_s < relay_sweeper.DEFAULT_SWEEP_AFTER_S / 2
        assert relay.exit_code() is None, "the relay worker exited"
    finally:
        stop(relay)
