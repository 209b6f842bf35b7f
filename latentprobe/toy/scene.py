"""The toy's scenes: coloured shapes on a ``GRID x GRID`` grid, their vocabulary and their rendering.

Re-exported by :mod:`latentprobe.toy.shapes`, which builds questions and data sets on them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from latentprobe.errors import InputError

__all__ = ["ANSWERS", "BACKGROUND_RGB", "COLOUR_RGB", "COLOURS", "COUNT_WORDS", "DEFAULT_IMAGE_SIZE", "GRID",
           "NUMBER_WORDS", "SHAPES", "SIZE_EXTENT", "SIZES", "TEMPLATE_ANSWERS", "TEMPLATE_NAMES", "TEMPLATES",
           "ToyObject", "ToyScene", "cell_box", "render"]

COLOURS: tuple[str, ...] = ("red", "green", "blue", "yellow")
SHAPES: tuple[str, ...] = ("square", "circle", "triangle")
SIZES: tuple[str, ...] = ("small", "large")
COUNT_WORDS: tuple[str, ...] = ("zero", "one", "two")
#: Number words used for (one-based) rows/columns in captions.
NUMBER_WORDS: tuple[str, ...] = ("zero", "one", "two", "three", "four")
#: Every possible answer word, in a fixed order.
ANSWERS: tuple[str, ...] = COLOURS + SHAPES + COUNT_WORDS

GRID = 4
DEFAULT_IMAGE_SIZE = 112

COLOUR_RGB: dict[str, tuple[int, int, int]] = {
    "red": (230, 25, 25),
    "green": (20, 190, 40),
    "blue": (30, 60, 240),
    "yellow": (250, 220, 20),
}
BACKGROUND_RGB = (0, 0, 0)
#: Fraction of the cell side covered by an object's bounding box.
SIZE_EXTENT: dict[str, float] = {"small": 0.4, "large": 0.7}

TEMPLATES: dict[str, str] = {
    "colour_of_shape": "what colour is the {shape} ?",
    "shape_of_colour": "what shape is the {colour} object ?",
    "colour_left_of": "what colour is the shape left of the {shape} ?",
    "count_colour": "how many {colour} shapes ?",
}
TEMPLATE_NAMES: tuple[str, ...] = tuple(TEMPLATES)
TEMPLATE_ANSWERS: dict[str, tuple[str, ...]] = {
    "colour_of_shape": COLOURS,
    "shape_of_colour": SHAPES,
    "colour_left_of": COLOURS,
    "count_colour": COUNT_WORDS,
}


@dataclass(frozen=True)
class ToyObject:
    """One object: attributes plus its (0-based) grid cell.

    Parameters
    ----------
    colour, shape, size : str
        Words of :data:`COLOURS`, :data:`SHAPES` and :data:`SIZES`.
    row, col : int
        The grid cell.
    """

    colour: str
    shape: str
    size: str
    row: int
    col: int

    def __post_init__(self) -> None:
        if self.colour not in COLOURS:
            raise InputError(f"unknown colour {self.colour!r}")
        if self.shape not in SHAPES:
            raise InputError(f"unknown shape {self.shape!r}")
        if self.size not in SIZES:
            raise InputError(f"unknown size {self.size!r}")
        if not (0 <= self.row < GRID and 0 <= self.col < GRID):
            raise InputError(f"cell ({self.row}, {self.col}) outside the {GRID}x{GRID} grid")


@dataclass(frozen=True)
class ToyScene:
    """A scene: objects in distinct cells, sorted by (row, col).

    Parameters
    ----------
    objects, image_id : tuple of ToyObject, str
        The objects, and the scene's id.
    """

    objects: tuple[ToyObject, ...]
    image_id: str

    def __post_init__(self) -> None:
        cells = [(o.row, o.col) for o in self.objects]
        if len(set(cells)) != len(cells):
            raise InputError("objects must occupy distinct cells")

    def image(self, image_size: int = DEFAULT_IMAGE_SIZE) -> np.ndarray:
        """The scene rendered as a uint8 ``H x W x 3`` array.

        Parameters
        ----------
        image_size : int
            Side in pixels.

        Returns
        -------
        np.ndarray
        """
        return render(self, image_size)


# ----------------------------------------------------------------------------- rendering
def cell_box(row: int, col: int, image_size: int = DEFAULT_IMAGE_SIZE) -> tuple[int, int, int, int]:
    """Pixel box ``(top, left, bottom, right)`` (end-exclusive) of a grid cell.

    Parameters
    ----------
    row : int
        Grid row.
    col : int
        Grid column.
    image_size : int
        Side of the image in pixels.

    Returns
    -------
    tuple[int, int, int, int]
    """
    edges = np.round(np.linspace(0, image_size, GRID + 1)).astype(int)
    return int(edges[row]), int(edges[col]), int(edges[row + 1]), int(edges[col + 1])


def _object_mask(obj: ToyObject, image_size: int) -> np.ndarray:
    cell = image_size / GRID
    cy, cx = (obj.row + 0.5) * cell, (obj.col + 0.5) * cell
    half = SIZE_EXTENT[obj.size] * cell / 2.0
    centres = np.arange(image_size, dtype=np.float64) + 0.5
    dy = centres[:, None] - cy
    dx = centres[None, :] - cx
    if obj.shape == "square":
        return (np.abs(dy) <= half) & (np.abs(dx) <= half)
    if obj.shape == "circle":
        return dy * dy + dx * dx <= half * half
    # upward triangle: apex at the top centre, base along the bottom edge of the box
    depth = (dy + half) / (2.0 * half)
    return (depth >= 0.0) & (depth <= 1.0) & (np.abs(dx) <= half * depth)


@lru_cache(maxsize=4096)
def _render_cached(objects: tuple[ToyObject, ...], image_size: int) -> np.ndarray:
    img = np.empty((image_size, image_size, 3), dtype=np.uint8)
    img[...] = BACKGROUND_RGB
    for obj in objects:
        img[_object_mask(obj, image_size)] = COLOUR_RGB[obj.colour]
    img.flags.writeable = False
    return img


def render(scene: ToyScene, image_size: int = DEFAULT_IMAGE_SIZE) -> np.ndarray:
    """Render ``scene`` as a uint8 ``image_size x image_size x 3`` array.

    Black background; solid squares, circles and upward triangles whose bounding box
    spans 70 % (large) or 40 % (small) of the cell side.  Deterministic; results are
    cached by scene content and a fresh writable copy is returned.

    Parameters
    ----------
    scene : ToyScene
        The scene.
    image_size : int
        Side in pixels.

    Returns
    -------
    np.ndarray
    """
    if image_size < GRID:
        raise InputError(f"image_size must be at least {GRID}")
    return _render_cached(tuple(scene.objects), int(image_size)).copy()
