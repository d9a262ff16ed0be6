"""The reconnect loop every channel subscriber shares, driven by real exceptions."""

from __future__ import annotations

import threading
from collections.abc import Generator

import pytest
import redis

from tasks.channels.reconnect import BACKOFF_MIN_S, Reconnecting


def attempts_failing_with(error: Exception, reconnecting: Reconnecting) -> int:
    """Attempts made when each one stops the loop and then fails with ``error``."""
    made = 0
    for attempt in reconnecting:
        made += 1
        with attempt:
            reconnecting.stopping.set()
            raise error
    return made


def test_the_pause_doubles_after_each_lost_redis_and_starts_over_after_a_clean_session() -> None:
    stopping = threading.Event()
    reconnecting = Reconnecting(stopping, "test subscriber")
    pauses = []
    for number, attempt in enumerate(reconnecting):
        pauses.append(reconnecting.delay_s)
        with attempt:
            if number < 2:
                raise redis.ConnectionError("Redis is restarting")
            if number == 3:
                stopping.set()
    # A clean session resets the pause, which then doubles while it waits.
    assert pauses == [BACKOFF_MIN_S, 2 * BACKOFF_MIN_S, 4 * BACKOFF_MIN_S, 2 * BACKOFF_MIN_S]


def test_a_lost_redis_ends_only_the_attempt() -> None:
    error = redis.TimeoutError("Timeout reading from socket")
    assert attempts_failing_with(error, Reconnecting(threading.Event(), "test")) == 1


def test_an_unexpected_error_ends_the_loop_unless_it_is_to_be_survived() -> None:
    survived = Reconnecting(threading.Event(), "test hub", survive=(Exception,))
    assert attempts_failing_with(ValueError("a bug"), survived) == 1
    with pytest.raises(ValueError, match="a bug"):
        attempts_failing_with(ValueError("a bug"), Reconnecting(threading.Event(), "test"))


def test_a_subscriber_generator_closed_inside_an_attempt_closes_at_once() -> None:
    closed = threading.Event()

    def messages() -> Generator[str, None, None]:
        for attempt in Reconnecting(threading.Event(), "test subscriber"):
            with attempt:
                try:
                    yield "first"
                    yield "second"
                finally:
                    closed.set()

    stream = messages()
    assert next(stream) == "first"
    stream.close()  # a swallowed GeneratorExit would start another attempt and raise here
    assert closed.is_set()


def test_losing_a_session_that_was_working_starts_the_pauses_over() -> None:
    stopping = threading.Event()
    reconnecting = Reconnecting(stopping, "test subscriber", working_after_s=0.05)
    pauses = []
    for number, attempt in enumerate(reconnecting):
        with attempt:
            if number == 3:
                stopping.set()
            elif number == 2:
                # This session works for a while before Redis goes away.
                threading.Event().wait(0.1)
                raise redis.ConnectionError("Redis restarted")
            else:
                raise redis.ConnectionError("Connection refused")
        pauses.append(reconnecting.delay_s)
    # The pause to be taken after each attempt: failing to connect doubles it;
    # losing a working session (the third) takes the shortest again.
    assert pauses == [BACKOFF_MIN_S, 2 * BACKOFF_MIN_S, BACKOFF_MIN_S, BACKOFF_MIN_S]
