"""Seeded, synthetic images of coloured shapes: an image classification task for demos and tests.

Each image is one filled shape on a plain background; the label is the shape's name. Colour,
size and position are random, so the class is the outline alone: a model has to learn
shape, not colour or place. Foreground and background always differ clearly in brightness,
so every image is solvable by eye. The bytes are PNG as a data platform would send them, and
the same (n, seed) gives the same bytes in every process (same Pillow and zlib).
"""

from __future__ import annotations

import io
import random
from collections.abc import Sequence

from PIL import Image, ImageDraw

SHAPE_LABELS: tuple[str, ...] = ("circle", "square", "triangle", "cross")

Colour = tuple[int, int, int]
# Smallest brightness gap (0..255 luma) between shape and background.
_MIN_CONTRAST = 90


def _luma(colour: Colour) -> float:
    red, green, blue = colour
    return 0.299 * red + 0.587 * green + 0.114 * blue


def _colours(rng: random.Random) -> tuple[Colour, Colour]:
    """A random background and a random shape colour that stands out from it."""
    background: Colour = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
    while True:
        shape: Colour = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
        if abs(_luma(shape) - _luma(background)) >= _MIN_CONTRAST:
            return background, shape


def _draw(
    draw: ImageDraw.ImageDraw, label: str, box: tuple[int, int, int, int], fill: Colour
) -> None:
    left, top, right, bottom = box
    if label == "circle":
        draw.ellipse(box, fill=fill)
    elif label == "square":
        draw.rectangle(box, fill=fill)
    elif label == "triangle":
        draw.polygon([((left + right) // 2, top), (right, bottom), (left, bottom)], fill=fill)
    elif label == "cross":
        bar = max(2, (right - left) // 3)
        middle_x, middle_y = (left + right) // 2, (top + bottom) // 2
        draw.rectangle((middle_x - bar // 2, top, middle_x - bar // 2 + bar - 1, bottom), fill=fill)
        draw.rectangle((left, middle_y - bar // 2, right, middle_y - bar // 2 + bar - 1), fill=fill)
    else:
        raise ValueError(f"labels: unknown shape {label!r}; use some of {SHAPE_LABELS}")


def render_shape(label: str, rng: random.Random, *, size: int = 32) -> Image.Image:
    """One RGB image of ``label`` with random colours, side length and position."""
    background, fill = _colours(rng)
    side = rng.randint(size * 5 // 8, size - size // 8)
    left = rng.randint(0, size - side)
    top = rng.randint(0, size - side)
    image = Image.new("RGB", (size, size), background)
    _draw(ImageDraw.Draw(image), label, (left, top, left + side - 1, top + side - 1), fill)
    return image


def shape_images(
    n: int, seed: int, *, size: int = 32, labels: Sequence[str] = SHAPE_LABELS
) -> list[tuple[bytes, str]]:
    """``n`` PNG images of shapes with their labels, classes in turn (balanced).

    Args:
        n: number of images.
        seed: seeds every random choice; the same seed gives the same bytes.
        size: side length of the square images in pixels.
        labels: which shapes to draw (a subset of ``SHAPE_LABELS``), in class order.

    Returns:
        (PNG bytes, label) pairs; image i shows ``labels[i % len(labels)]``.
    """
    if n < 0:
        raise ValueError(f"n must not be negative, got {n}")
    if size < 8:
        raise ValueError(f"size must be at least 8 pixels, got {size}")
    unknown = sorted(set(labels) - set(SHAPE_LABELS))
    if not labels or unknown:
        raise ValueError(f"labels: need some of {SHAPE_LABELS}, got unknown {unknown}")
    rng = random.Random(f"lethe-shapes:{seed}")  # noqa: S311  (synthetic pictures, not secrets)
    out = []
    for i in range(n):
        label = labels[i % len(labels)]
        buffer = io.BytesIO()
        render_shape(label, rng, size=size).save(buffer, format="PNG")
        out.append((buffer.getvalue(), label))
    return out
