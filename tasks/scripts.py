"""Lua scripts that pipelines call by their digest (EVALSHA), sent whole only when Redis lacks them.

The task path runs the task index's steps (about 4 KB of Lua) with every submission,
start and revoke. Sent whole (EVAL), the source travels and is hashed by Redis on
every call; by digest, a call costs Redis less CPU.

A pipeline cannot load a script midway, and Redis forgets its scripts when it
restarts, on SCRIPT FLUSH and on a failover to a replica that never ran them. It
then answers NOSCRIPT to that one call, which did not run, and runs every other
command of the pipeline; inside MULTI/EXEC too: redis-server 7 and Valkey 9 queue
an unknown EVALSHA and answer NOSCRIPT as its reply within EXEC, while the rest of
the transaction commits. So a pipeline that a script was queued on runs, right
after, exactly the calls that were answered NOSCRIPT, whole (which loads them):
nothing is done twice and nothing is skipped. (redis-py's own Script object, on a
pipeline, asks SCRIPT EXISTS before every run instead: a round trip each time.)
"""

from __future__ import annotations

import hashlib
from typing import Any

from redis.exceptions import NoScriptError

# Every script's source by its digest, to send it whole where Redis lacks it.
_SOURCES: dict[str, str] = {}


class Script:
    """A Lua script, with the digest that Redis knows it by once it ran it."""

    def __init__(self, source: str) -> None:
        self.sha = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()
        _SOURCES[self.sha] = source

    def queue(self, pipe: Any, numkeys: int, *args: Any) -> None:
        """Queue a call on a pipeline (or MULTI/EXEC); its execute() then runs it
        whole if Redis did not know it."""
        pipe.execute_command("EVALSHA", self.sha, numkeys, *args)
        if not isinstance(pipe.execute, _RunsUnknownScriptsAgain):
            pipe.execute = _RunsUnknownScriptsAgain(pipe)


class _RunsUnknownScriptsAgain:
    """Stands in for a pipeline's execute(): runs it, then, in one more round trip, the
    script calls Redis answered NOSCRIPT, with EVAL, so that the caller gets every reply.

    It is set on the pipeline itself, until the pipeline runs, so that whoever runs
    it (kombu's publish batch, a caller's own ``pipe.execute()``) needs to know
    nothing of it.
    """

    def __init__(self, pipe: Any) -> None:
        self.pipe = pipe
        self.run = pipe.execute

    def __call__(self, raise_on_error: bool = True) -> list[Any]:
        # Off the pipeline until a script is queued on it again, so that the two
        # hold no reference cycle: they are freed at once, not by the collector.
        del self.pipe.execute
        sent = list(self.pipe.command_stack)  # execute() empties the pipeline
        replies: list[Any] = self.run(raise_on_error=False)
        for reply in replies:
            if isinstance(reply, Exception):
                return self._after_errors(sent, replies, raise_on_error)
        return replies

    def _after_errors(
        self, sent: list[tuple[tuple[Any, ...], Any]], replies: list[Any], raise_on_error: bool
    ) -> list[Any]:
        unknown = [
            i
            for i, reply in enumerate(replies)
            if isinstance(reply, NoScriptError)
            and sent[i][0][0] == "EVALSHA"
            and sent[i][0][1] in _SOURCES
        ]
        if unknown:
            # The pipeline is empty again and keeps its mode and its connection pool:
            # a held connection (webapp/durable_accept.py) runs these calls too.
            for i in unknown:
                _, sha, *rest = sent[i][0]
                self.pipe.execute_command("EVAL", _SOURCES[sha], *rest)
            for i, reply in zip(unknown, self.run(raise_on_error=False), strict=True):
                replies[i] = reply
        if raise_on_error:
            for reply in replies:
                if isinstance(reply, Exception):
                    raise reply
        return replies
