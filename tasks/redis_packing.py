"""Redis commands packed for the wire by hiredis in one call, as redis-py would pack them.

redis-py hands every command to ``HiredisRespSerializer.pack``, which looks through
the arguments for memoryviews, splits the command name, and passes each argument
through its ``Encoder`` (a chain of ``isinstance`` checks) before hiredis's C
``pack_command`` writes the bytes: about 6 µs of Python per command here, against
1 µs for ``pack_command`` alone. A task's path packs a few dozen commands (the
``POST``'s MULTI/EXEC, the ``GET``'s reads, the worker's fetch, result and acks).

``pack_command`` writes exactly the bytes redis-py's serializer writes for what
taskrelay, kombu and Celery send: arguments of the exact types ``str`` (as UTF-8,
strictly), ``bytes``, ``int`` and ``float`` (as their ``repr``), and a command name
of one word. Anything else (a bool that redis-py refuses, a memoryview, a subclass
of int whose ``repr`` differs, a two-word name such as ``CLIENT SETNAME``) goes to
redis-py's own serializer, which packs or refuses it as it always did.

Passed to redis-py through its connections' ``command_packer`` keyword, and only
where the connection encodes text as UTF-8 with strict errors, redis-py's default,
which is the encoding ``pack_command`` uses (``packer_for``). Every pool taskrelay
makes, or has kombu and Celery make, takes it through ``add_packer``.
"""

from __future__ import annotations

from typing import Any

import hiredis
from redis._parsers.encoders import Encoder
from redis.connection import HiredisRespSerializer, PythonRespSerializer

# The argument types whose packing by hiredis is byte for byte redis-py's.
_PACKED_AS_REDIS_PY_DOES = frozenset({str, bytes, int, float})
# redis-py's defaults: what every connection taskrelay, kombu and Celery make uses.
_ENCODING = "utf-8"
_ENCODING_ERRORS = "strict"
# redis-py's own split of large values into separate buffers (its default).
_BUFFER_CUTOFF = 6000


class HiredisCommandPacker:
    """A connection's ``command_packer``: hiredis for plain commands, redis-py otherwise.

    Stateless, so every connection of a pool shares one.
    """

    def __init__(self) -> None:
        encode = Encoder(_ENCODING, _ENCODING_ERRORS, False).encode  # type: ignore[no-untyped-call]
        fallback = PythonRespSerializer(_BUFFER_CUTOFF, encode)
        self._redis_py = HiredisRespSerializer(fallback.pack, encode)  # type: ignore[no-untyped-call]

    def pack(self, *args: Any) -> list[bytes]:
        for arg in args:
            if type(arg) not in _PACKED_AS_REDIS_PY_DOES:
                return self._redis_py.pack(*args)  # type: ignore[no-any-return]
        name = args[0]
        # redis-py splits a name of several words (``CLIENT SETNAME``) into arguments.
        if type(name) is not str or not name.isidentifier():
            return self._redis_py.pack(*args)  # type: ignore[no-any-return]
        return [hiredis.pack_command(args)]


PACKER = HiredisCommandPacker()


def packer_for(connection_kwargs: dict[str, Any]) -> dict[str, Any]:
    """``{"command_packer": PACKER}`` for connections made with these keywords, or
    nothing where they encode text otherwise than redis-py's default."""
    encoding = connection_kwargs.get("encoding", _ENCODING)
    errors = connection_kwargs.get("encoding_errors", _ENCODING_ERRORS)
    if encoding.lower().replace("_", "-") != _ENCODING or errors != _ENCODING_ERRORS:
        return {}
    return {"command_packer": PACKER}


def add_packer(connection_kwargs: dict[str, Any]) -> None:
    """Give the connections made with these keywords the packer, where ``packer_for``
    offers it and the keywords name no packer of their own."""
    for key, value in packer_for(connection_kwargs).items():
        connection_kwargs.setdefault(key, value)
