"""The work itself, as plain functions: no Celery, no Redis, easy to test on their own."""

from __future__ import annotations

import hashlib


def fit(width: int, height: int, max_side: int) -> dict[str, int]:
    """The largest size within max_side x max_side that keeps the image's aspect ratio.

    An image already small enough keeps its size: a thumbnail never enlarges.
    """
    scale = min(1.0, max_side / max(width, height))
    return {
        "width": max(1, round(width * scale)),
        "height": max(1, round(height * scale)),
    }


def placeholder_colour(image_id: str) -> str:
    """A colour to show while the thumbnail is made: the same id always gets the same one."""
    digest = hashlib.sha256(image_id.encode()).hexdigest()
    return f"#{digest[:6]}"
