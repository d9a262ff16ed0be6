"""Reads of kombu's private state, each failing loudly when kombu changes it.

The lease renewal must know which messages a worker holds, and kombu keeps that only
in a private attribute. Reading it through ``getattr(..., None)`` would switch the
renewal off without a word after a kombu upgrade that renamed it, and every long task
would then run twice; here the read raises instead, and a test
(tests/integration/test_broker_transport.py) breaks before production does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kombu

from tasks.errors import TaskrelayError

# kombu.transport.virtual.QoS keeps the unacknowledged deliveries of a channel in
# this OrderedDict, delivery tag -> message; acknowledged tags leave it lazily.
DELIVERED_ATTRIBUTE = "_delivered"


class KombuInternalsChanged(TaskrelayError):
    """kombu no longer has the private state taskrelay reads: update taskrelay for it."""


def held_delivery_tags(qos: Any) -> list[str]:
    """Delivery tags of the messages a kombu virtual channel holds unacknowledged.

    A tag acknowledged since kombu last tidied may still be among them; renewing its
    lease is harmless, as the renewal only touches records that still exist.
    """
    # The instance's own attribute: the class default (None) must not pass for it.
    delivered = getattr(qos, "__dict__", {}).get(DELIVERED_ATTRIBUTE)
    if not isinstance(delivered, Mapping):
        raise KombuInternalsChanged(
            f"kombu {kombu.__version__}: {type(qos).__module__}.{type(qos).__qualname__} has no "
            f"{DELIVERED_ATTRIBUTE!r} mapping of delivery tags (kombu.transport.virtual.QoS."
            f"{DELIVERED_ATTRIBUTE}), so the lease renewal cannot tell which messages this "
            "worker holds; update tasks/celery_ext/kombu_internals.py for this kombu"
        )
    return [str(tag) for tag in list(delivered)]
