"""The scene's background colour: what a model renders where its rays miss the object.

IDR-style models paint every ray that misses the surface in one colour, and evaluation composites the
ground truth on that colour outside the mask. When the photos' background is uniform (a rendered scene
on white or black), that colour must be the photos' own, or every silhouette pixel is scored against
the wrong colour. `resolve_background` turns the `data.background` setting into the colour:

- `R,G,B` (each in [0, 1]), `white` or `black`: that colour;
- `auto`: the colour the loader composited transparent pixels on (NeRF-synthetic RGBA: white unless
  told otherwise); else the colour `detect_background` finds outside the masks; else black (real
  photos such as DTU's, scenes inside a textured backdrop, scenes without masks).
"""

from __future__ import annotations

import logging

import numpy as np

from nsr.data.scene import SceneData

logger = logging.getLogger(__name__)
Colour = tuple[float, float, float]

FALLBACK = (0.0, 0.0, 0.0)
"""The background colour when none is given or found."""
NAMED = {"white": (1.0, 1.0, 1.0), "black": (0.0, 0.0, 0.0)}
"""Colour names accepted beside R,G,B."""
TOLERANCE = 0.03
"""A pixel outside the masks counts as background colour when no channel differs from the median by more
(about 8 of 255: compression noise and anti-aliased edges stay inside, texture does not)."""
MIN_FRACTION = 0.9
"""The background is uniform when at least this share of the pixels outside the masks is within
`TOLERANCE` of their median colour."""
MAX_SAMPLES = 1 << 20
"""Pixels outside the masks looked at (an even subsample of them, for speed on large scenes)."""


def _colour(values) -> Colour:
    return (float(values[0]), float(values[1]), float(values[2]))


def parse_background(spec: str) -> Colour | None:
    """`auto` -> None; `white`, `black` or `R,G,B` (floats in [0, 1]) -> the colour.

    Raises:
        ValueError: naming what was expected, for anything else.
    """
    text = spec.strip().lower()
    if text == "auto":
        return None
    if text in NAMED:
        return NAMED[text]
    parts = text.split(",")
    try:
        values = tuple(float(part) for part in parts)
    except ValueError:
        values = ()
    if len(values) != 3 or not all(0.0 <= v <= 1.0 for v in values):
        raise ValueError(f"expected auto, white, black or R,G,B with each in [0, 1], got {spec!r}")
    return _colour(values)


def detect_background(
    scene: SceneData, tolerance: float = TOLERANCE, min_fraction: float = MIN_FRACTION
) -> tuple[Colour | None, str]:
    """The uniform colour of the pixels outside the masks, or None, and why.

    The median colour of the pixels outside the masks is the background when at least `min_fraction`
    of them lie within `tolerance` of it in every channel.
    """
    if not scene.has_masks:
        return None, "the scene has no masks"
    outside = ~scene.masks
    count = int(np.count_nonzero(outside))
    if count == 0:
        return None, "no pixel lies outside the masks"
    pixels = scene.images[outside]
    if count > MAX_SAMPLES:
        pixels = pixels[:: -(-count // MAX_SAMPLES)]
    median = np.median(pixels, axis=0)
    close = np.all(np.abs(pixels - median) <= tolerance, axis=1)
    fraction = float(np.mean(close))
    colour = "(" + ", ".join(f"{c:.3f}" for c in median) + ")"
    if fraction < min_fraction:
        return None, (
            f"the pixels outside the masks are not uniform: {100 * fraction:.0f}% lie within {tolerance} "
            f"of their median {colour} (at least {100 * min_fraction:.0f}% needed)"
        )
    reason = (
        f"uniform outside the masks: {100 * fraction:.0f}% of those pixels lie within {tolerance} of {colour}"
    )
    return _colour(median), reason


def resolve_background(spec: str, scene: SceneData) -> tuple[Colour, str]:
    """The background colour (r, g, b) in [0, 1] for the `data.background` setting `spec`, and why
    (module docstring); the choice is logged (logger `nsr.data.background`).

    Raises:
        ValueError: for a malformed `spec` (see `parse_background`).
    """
    given = parse_background(spec)
    if given is not None:
        rgb, reason = given, f"given as {spec.strip()!r}"
    elif scene.composited_on is not None:
        rgb = _colour(scene.composited_on)
        reason = "the loader composited the transparent pixels of the RGBA images on it"
    else:
        detected, reason = detect_background(scene)
        rgb = detected if detected is not None else FALLBACK
        if detected is None:
            reason += "; using black"
    logger.info("background colour (%.3f, %.3f, %.3f): %s", *rgb, reason)
    return rgb, reason
