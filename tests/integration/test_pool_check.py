"""The web's pooled-connection check under gevent (webapp/pool_check.py), in a process of
its own that gevent patches as gunicorn's gevent worker does."""

from __future__ import annotations

import json
import subprocess
import sys

# Lends a pooled connection while another greenlet is ready to run, then asks the
# check about a clean connection, one with a reply left unread and one the server closed.
PROBE = """
import json, sys
from gevent import monkey
monkey.patch_all()
import gevent, redis
from webapp import pool_check

installed = sys.argv[2] == "install" and pool_check.install()
client = redis.Redis.from_url(sys.argv[1])
client.ping()
pool = client.connection_pool

ran = []
other = gevent.spawn(ran.append, "other greenlet")
connection = pool.get_connection()
switched_while_lending = bool(ran)
other.join(timeout=5)

# The check's answer: nothing to read on a clean connection; a reply left unread, or
# a connection the server closed, reads as ready.
clean_reads_ready = connection.can_read()
connection.send_command("PING")
gevent.sleep(0.2)
unread_reply_seen = connection.can_read()
connection.read_response()
connection.send_command("CLIENT", "ID")
own_id = connection.read_response()
redis.Redis.from_url(sys.argv[1]).client_kill_filter(_id=own_id)
gevent.sleep(0.2)
try:
    closed_seen = connection.can_read()
except redis.ConnectionError:
    closed_seen = True  # redis-py's way of saying the server closed it
pool.release(connection)
print(json.dumps({
    "installed": installed,
    "switched_while_lending": switched_while_lending,
    "clean_reads_ready": clean_reads_ready,
    "unread_reply_seen": unread_reply_seen,
    "closed_seen": closed_seen,
}))
"""


def probe(redis_url: str, mode: str) -> dict[str, bool]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, redis_url, mode],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_pooled_connection_is_checked_without_a_trip_through_the_gevent_hub(
    redis_url: str,
) -> None:
    # gevent's own poll gives the hub a turn: another greenlet runs mid-loan.
    assert probe(redis_url, "plain") == {
        "installed": False,
        "switched_while_lending": True,
        "clean_reads_ready": False,
        "unread_reply_seen": True,
        "closed_seen": True,
    }
    # The operating system's poll answers the zero-timeout check in place, and
    # answers as gevent's did.
    assert probe(redis_url, "install") == {
        "installed": True,
        "switched_while_lending": False,
        "clean_reads_ready": False,
        "unread_reply_seen": True,
        "closed_seen": True,
    }
