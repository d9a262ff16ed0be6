"""The example's tasks. ``taskrelay up --tasks thumbnails.jobs`` loads this module.

Each task is a thin ``@http_task`` over a plain function in ``sizing``: the
parameters' annotations are what ``POST /api/tasks`` validates, and the
docstrings are what ``GET /api/registry`` shows. A task may run again after its
worker died, so each one gives the same answer for the same arguments.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from tasks.declare import http_task
from tasks.registry import Bounds
from thumbnails import sizing

# The largest image side accepted, and the thumbnail sides offered, in pixels.
MAX_IMAGE_SIDE_PX = 100_000
MIN_THUMBNAIL_SIDE_PX = 16
MAX_THUMBNAIL_SIDE_PX = 1024
# Image ids are short keys into the image store, not the images themselves.
MAX_IMAGE_ID_CHARS = 200

Side = Annotated[int, Bounds(minimum=1, maximum=MAX_IMAGE_SIDE_PX)]
ThumbnailSide = Annotated[int, Bounds(minimum=MIN_THUMBNAIL_SIDE_PX, maximum=MAX_THUMBNAIL_SIDE_PX)]
ImageId = Annotated[str, Bounds(max_length=MAX_IMAGE_ID_CHARS)]


@http_task()
def thumbnail_size(width: Side, height: Side, max_side: ThumbnailSide = 256) -> dict[str, int]:
    """The thumbnail size of a `width` x `height` image, within `max_side` on each side."""
    return sizing.fit(width, height, max_side)


@http_task()
def placeholder(image_id: ImageId) -> dict[str, str]:
    """The colour shown in place of image `image_id` until its thumbnail is ready."""
    return {"image_id": image_id, "colour": sizing.placeholder_colour(image_id)}


@http_task(bind=True)
def thumbnail_batch(
    self: Any,
    images: Annotated[int, Bounds(minimum=1, maximum=1000)],
    max_side: ThumbnailSide = 256,
    delay_s: Annotated[float, Bounds(minimum=0, maximum=5)] = 0.2,
) -> dict[str, int]:
    """Make `images` thumbnails of `max_side`, taking `delay_s` seconds each, with progress."""
    for done in range(1, images + 1):
        time.sleep(delay_s)  # stands in for reading, scaling and storing one image
        self.update_state(
            state="PROGRESS",
            meta={"current": done, "total": images, "message": f"{done} of {images}"},
        )
    return {"images": images, "max_side": max_side}
