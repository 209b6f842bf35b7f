"""Images for Qwen2.5-VL-style models: preprocessing through a Hugging Face image processor, and small helpers.

:func:`pixel_values` sends images of any size and mode (PIL images, or uint8 arrays in L, RGB or
RGBA) through the checkpoint's image processor, by default transformers'
``Qwen2VLImageProcessorPil`` (no torchvision needed), which resizes to multiples of 28 px within
its min/max pixels exactly as the authors' processors do.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import torch

from latentprobe.errors import ImageBatchError

if TYPE_CHECKING:
    import PIL.Image

__all__ = [
    "OPENAI_CLIP_MEAN",
    "OPENAI_CLIP_STD",
    "blank_image",
    "noise_image",
    "num_image_tokens",
    "as_pil",
    "default_image_processor",
    "occlude",
    "pixel_values",
]

OPENAI_CLIP_MEAN: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)


def as_pil(image: Any) -> "PIL.Image.Image":
    """A PIL image from a PIL image (any mode) or a uint8 array: ``H x W`` (L), ``H x W x 3`` (RGB) or
    ``H x W x 4`` (RGBA). The processor converts every mode to RGB (RGBA composited on white)."""
    from PIL import Image

    if isinstance(image, Image.Image):
        return image
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        raise ImageBatchError(
            f"expected a uint8 image array, got dtype {arr.dtype}; convert it, e.g. (x * 255).round().astype('uint8'), "
            "or pass a PIL image."
        )
    if arr.ndim == 2 or (arr.ndim == 3 and arr.shape[-1] in (1, 3, 4)):
        if arr.ndim == 3 and arr.shape[-1] == 1:
            arr = arr[..., 0]
        if min(arr.shape[:2]) == 0:
            raise ImageBatchError(f"image of shape {arr.shape} is empty.")
        return Image.fromarray(arr)
    raise ImageBatchError(
        f"expected an H x W, H x W x 3 or H x W x 4 uint8 image (channels last), got shape {arr.shape}."
    )


@functools.lru_cache(maxsize=1)
def default_image_processor() -> Any:
    """transformers' ``Qwen2VLImageProcessorPil()`` with its defaults (no torchvision needed).

    Used when no checkpoint processor is given. On images whose sides are multiples of 28 px
    (within its min/max pixels) it does no resizing.
    """
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    return Qwen2VLImageProcessorPil()


def pixel_values(images: Sequence[Any] | Any, processor: Any = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(pixel_values, image_grid_thw)`` of images of any size and mode, through ``processor``.

    ``processor`` is a Hugging Face image processor (the checkpoint's own; default
    :func:`default_image_processor`) or a callable ``images -> (pixel_values, image_grid_thw)``.
    A single image is a batch of one. ``pixel_values`` is float32 ``[sum_i h_i * w_i, 3 * 2 * 14 * 14]``,
    ``image_grid_thw`` int64 ``[n_images, 3]``.
    """
    if not isinstance(images, (list, tuple)):
        images = [images]
    if len(images) == 0:
        raise ImageBatchError("no images given.")
    pils = [as_pil(im) for im in images]
    proc = default_image_processor() if processor is None else processor
    res = proc(pils, return_tensors="pt") if processor is None or hasattr(proc, "model_input_names") else proc(pils)
    if isinstance(res, tuple):
        pv, thw = res
    else:  # a BatchFeature
        pv, thw = res["pixel_values"], res["image_grid_thw"]
    return torch.as_tensor(pv), torch.as_tensor(thw).long()


def num_image_tokens(image_size: int | tuple[int, int], *, patch_size: int = 14, merge_size: int = 2) -> int:
    """Number of merged image tokens (``<|image_pad|>`` placeholders) for an image size."""
    h, w = (image_size, image_size) if isinstance(image_size, int) else image_size
    factor = patch_size * merge_size
    if h % factor or w % factor:
        raise ImageBatchError(f"image size {h}x{w} is not a multiple of {factor}; resize to a multiple of {factor}.")
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
    h, w = out.shape[:2]
    if not (0 <= top < bottom <= h and 0 <= left < right <= w):
        raise ImageBatchError(
            f"occlusion box (top, left, bottom, right)={tuple(box)} does not lie inside the {h}x{w} image or is "
            f"empty/inverted; give 0 <= top < bottom <= {h} and 0 <= left < right <= {w}."
        )
    region = out[top:bottom, left:right]
    if isinstance(fill, str):
        if fill != "noise":
            raise ImageBatchError(f"unknown fill {fill!r}; use a grey level, an RGB triple or 'noise'.")
        region[...] = np.random.default_rng(seed).integers(0, 256, size=region.shape, dtype=np.uint8)
    else:
        region[...] = np.asarray(fill, dtype=np.uint8)
    return out
