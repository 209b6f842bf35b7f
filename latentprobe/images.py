"""Qwen2-VL / Qwen2.5-VL image preprocessing in plain numpy, plus small image helpers.

:func:`to_pixel_values` reproduces, value for value, the ``pixel_values`` /
``image_grid_thw`` produced by transformers' Qwen2-VL image processor for images that
need no resizing (sides already multiples of ``patch_size * merge_size``): rescale by
1/255 (in float64, then float32), normalise per channel in float32, repeat the frame
``temporal_patch_size`` times and flatten patches in merge-window order.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

__all__ = [
    "OPENAI_CLIP_MEAN",
    "OPENAI_CLIP_STD",
    "blank_image",
    "noise_image",
    "num_image_tokens",
    "occlude",
    "to_pixel_values",
]

OPENAI_CLIP_MEAN: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)


def _check_image(image: np.ndarray, factor: int) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"expected an H x W x 3 image, got shape {image.shape}")
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got dtype {image.dtype}")
    h, w = image.shape[:2]
    if h % factor or w % factor or h == 0 or w == 0:
        raise ValueError(
            f"image size {h}x{w} is not a multiple of {factor} (patch_size * merge_size); "
            f"resize the image so both sides are multiples of {factor} (e.g. 112 x 112)"
        )
    return image


def to_pixel_values(
    images: Sequence[np.ndarray] | np.ndarray,
    *,
    patch_size: int = 14,
    temporal_patch_size: int = 2,
    merge_size: int = 2,
    mean: Sequence[float] = OPENAI_CLIP_MEAN,
    std: Sequence[float] = OPENAI_CLIP_STD,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Turn uint8 ``H x W x 3`` images into Qwen2.5-VL vision inputs.

    Returns ``(pixel_values, image_grid_thw)``: a float32 tensor of shape
    ``[sum_i grid_h_i * grid_w_i, 3 * temporal_patch_size * patch_size**2]`` and an int64
    tensor ``[n_images, 3]`` of ``(1, grid_h, grid_w)``.  A single ``H x W x 3`` array is
    accepted as a batch of one.  Raises ``ValueError`` unless both sides are multiples
    of ``patch_size * merge_size`` (28 by default); no resizing is done.
    """
    if isinstance(images, np.ndarray) and images.ndim == 3:
        images = [images]
    if len(images) == 0:
        raise ValueError("no images given")
    factor = patch_size * merge_size
    mean_arr = np.asarray(mean, dtype=np.float32)
    std_arr = np.asarray(std, dtype=np.float32)
    all_patches: list[np.ndarray] = []
    grids: list[list[int]] = []
    for image in images:
        image = _check_image(image, factor)
        h, w = image.shape[:2]
        # rescale exactly like transformers: float64 multiply, then downcast to float32
        x = (image.astype(np.float64) * (1.0 / 255.0)).astype(np.float32)
        x = (x - mean_arr) / std_arr  # (H, W, C), float32
        x = np.moveaxis(x, -1, 0)  # (C, H, W)
        grid_h, grid_w = h // patch_size, w // patch_size
        channel = x.shape[0]
        patches = x.reshape(
            channel, grid_h // merge_size, merge_size, patch_size, grid_w // merge_size, merge_size, patch_size
        )
        # (grid_h/m, grid_w/m, m, m, C, patch, patch)
        patches = patches.transpose(1, 4, 2, 5, 0, 3, 6)
        # repeat the single frame temporal_patch_size times -> (..., C, T, patch, patch)
        patches = np.broadcast_to(
            patches[:, :, :, :, :, None], (*patches.shape[:5], temporal_patch_size, *patches.shape[5:])
        )
        all_patches.append(
            np.ascontiguousarray(patches).reshape(
                grid_h * grid_w, channel * temporal_patch_size * patch_size * patch_size
            )
        )
        grids.append([1, grid_h, grid_w])
    pixel_values = torch.from_numpy(np.concatenate(all_patches, axis=0))
    image_grid_thw = torch.tensor(grids, dtype=torch.long)
    return pixel_values, image_grid_thw


def num_image_tokens(image_size: int | tuple[int, int], *, patch_size: int = 14, merge_size: int = 2) -> int:
    """Number of merged image tokens (``<|image_pad|>`` placeholders) for an image size."""
    h, w = (image_size, image_size) if isinstance(image_size, int) else image_size
    factor = patch_size * merge_size
    if h % factor or w % factor:
        raise ValueError(f"image size {h}x{w} is not a multiple of {factor}; resize to a multiple of {factor}")
    return (h // factor) * (w // factor)


def _hw(size: int | tuple[int, int]) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


def blank_image(size: int | tuple[int, int] = 112, fill: int | Sequence[int] = 0) -> np.ndarray:
    """A uniform uint8 ``H x W x 3`` image (black by default)."""
    h, w = _hw(size)
    img = np.empty((h, w, 3), dtype=np.uint8)
    img[...] = np.asarray(fill, dtype=np.uint8)
    return img


def noise_image(size: int | tuple[int, int] = 112, seed: int = 0) -> np.ndarray:
    """Uniform random uint8 ``H x W x 3`` noise, deterministic in ``seed``."""
    h, w = _hw(size)
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def occlude(
    image: np.ndarray, box: tuple[int, int, int, int], fill: int | Sequence[int] | str = 0, seed: int = 0
) -> np.ndarray:
    """Copy of ``image`` with ``box = (top, left, bottom, right)`` (end-exclusive) filled.

    ``fill`` is a grey level, an RGB triple, or ``"noise"`` for deterministic uniform
    noise (``seed``).  The input is not modified.
    """
    out = np.array(image, dtype=np.uint8, copy=True)
    top, left, bottom, right = (int(v) for v in box)
    region = out[top:bottom, left:right]
    if isinstance(fill, str):
        if fill != "noise":
            raise ValueError(f"unknown fill {fill!r}; use a grey level, an RGB triple or 'noise'")
        region[...] = np.random.default_rng(seed).integers(0, 256, size=region.shape, dtype=np.uint8)
    else:
        region[...] = np.asarray(fill, dtype=np.uint8)
    return out
