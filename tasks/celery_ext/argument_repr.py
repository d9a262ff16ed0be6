"""A message's ``kwargsrepr``: the text Celery's ``saferepr`` writes, for less.

Celery puts a short text of a task's arguments in every message (``argsrepr`` and
``kwargsrepr``, shown by Flower and the workers' logs), written by
``celery.utils.saferepr.saferepr``: a generator that walks the value piece by piece,
so that an object of any kind, however deep or large, gives a bounded text. The web
sends JSON data only, mostly small; there Python's own ``repr`` writes the same text,
and the check that it may costs a fraction of the walk (a channel message's relay
arguments: 83 µs against 6 µs, about 8 % of a publish's CPU). This module takes
``repr`` only where the two agree and hands everything else to ``saferepr``:

- JSON's types only: dicts with text keys, lists, text, numbers, booleans and None;
- text that ``repr`` writes between single quotes unchanged (``saferepr`` escapes
  nothing, so a quote, a backslash or a line break would read differently);
- containers no deeper than ``saferepr`` shows (``task_repr_maxlevels``; below it
  shows ``{...}``);
- a text no longer than its bound (``saferepr`` cuts longer ones).
"""

from __future__ import annotations

from typing import Any

from celery.utils.saferepr import saferepr

# What ``saferepr`` writes for ``()``.
NO_ARGS_REPR = "()"

_SCALARS = (int, float, type(None))  # bool is an int


def kwargs_repr(kwargs: dict[str, Any], *, maxsize: int, maxlevels: int) -> str:
    """``saferepr(kwargs, maxsize, maxlevels=maxlevels)``, by ``repr`` where they agree."""
    if repr_agrees(kwargs, maxlevels):
        text = repr(kwargs)
        if len(text) <= maxsize:
            return text
    return str(saferepr(kwargs, maxsize, maxlevels=maxlevels))


def repr_agrees(value: Any, levels_left: int) -> bool:
    """Whether ``repr`` writes ``value`` as ``saferepr`` does, with this many levels left."""
    if isinstance(value, str):
        return _plain_text(value)
    if isinstance(value, _SCALARS):
        return True
    if levels_left <= 0:
        return False
    if type(value) is dict:
        return all(
            isinstance(key, str) and _plain_text(key) and repr_agrees(item, levels_left - 1)
            for key, item in value.items()
        )
    if type(value) is list:
        return all(repr_agrees(item, levels_left - 1) for item in value)
    return False


def _plain_text(text: str) -> bool:
    return text.isprintable() and "'" not in text and "\\" not in text
