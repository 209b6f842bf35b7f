"""Images for Qwen2.5-VL-style models: preprocessing through a Hugging Face image processor, and small helpers.

:func:`pixel_values` sends images of any size and mode (PIL images, or uint8 arrays in L, RGB or
RGBA) through the checkpoint's image processor, by default transformers'
``Qwen2VLImageProcessorPil`` (no torchvision needed), which resizes to multiples of 28 px within
its min/max pixels exactly as the authors' processors do.

The published VL families' scripts resize every image *before* the processor: ``qwen_vl_utils``'
``process_vision_info`` (``fetch_image``: :func:`smart_resize` within ``[4*28*28, 16384*28*28]`` pixels,
then a PIL resize), and the processor (or vLLM's copy of it) applies its own bounds to the already
resized image. :class:`PreResize` is that first step; a prompt convention with ``pre_resize`` set
applies it before the processor (see ``docs/published-protocols.md``, "Image sizing").
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np
import torch

from latentprobe.errors import ImageBatchError

if TYPE_CHECKING:
    import PIL.Image

__all__ = [
    "OPENAI_CLIP_MEAN",
    "OPENAI_CLIP_STD",
    "QWEN_VL_UTILS_PIXELS",
    "PreResize",
    "blank_image",
    "noise_image",
    "num_image_tokens",
    "as_pil",
    "default_image_processor",
    "occlude",
    "pixel_values",
    "smart_resize",
    "to_rgb",
]

OPENAI_CLIP_MEAN: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)


def as_pil(image: "PIL.Image.Image | np.ndarray") -> "PIL.Image.Image":
    """A PIL image from a PIL image (any mode) or a uint8 array: ``H x W`` (L), ``H x W x 3`` (RGB) or
    ``H x W x 4`` (RGBA). The processor converts every mode to RGB (RGBA composited on white).

    Parameters
    ----------
    image : PIL.Image.Image | np.ndarray
        The image.

    Returns
    -------
    PIL.Image.Image
    """
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


#: ``qwen_vl_utils``' default pixel bounds for an image (``MIN_PIXELS = 4 * 28 * 28``, ``MAX_PIXELS = 16384 * 28 * 28``).
QWEN_VL_UTILS_PIXELS: tuple[int, int] = (4 * 28 * 28, 16384 * 28 * 28)


def smart_resize(height: int, width: int, *, min_pixels: int, max_pixels: int, factor: int = 28) -> tuple[int, int]:
    """``(height, width)`` that ``qwen_vl_utils`` resizes an image to: multiples of ``factor``, the pixel count
    within ``[min_pixels, max_pixels]``, the aspect ratio kept as closely as possible.

    Each side is first rounded to the nearest multiple of ``factor`` (at least ``factor``); if that holds
    too many pixels both sides are scaled by ``sqrt(max_pixels / (H * W))`` and floored (at least
    ``factor``), if too few scaled by ``sqrt(min_pixels / (H * W))`` and ceiled. Python's ``round``
    (half to even), as the source. transformers' ``smart_resize`` differs only for sides under
    ``factor / 2`` (it rounds them to 0 before the bounds apply).

    Parameters
    ----------
    height : int
        The image's height.
    width : int
        Its width.
    min_pixels : int
        Lower bound of the pixel count.
    max_pixels : int
        Upper bound of the pixel count.
    factor : int
        Sides become multiples of it.

    Returns
    -------
    tuple[int, int]

    Raises
    ------
    ImageBatchError
        An empty image, or an aspect ratio over 200 (``qwen_vl_utils`` refuses those too).

    Examples
    --------
    >>> smart_resize(230, 150, min_pixels=4 * 28 * 28, max_pixels=16384 * 28 * 28)
    (224, 140)
    """
    if min(height, width) < 1:
        raise ImageBatchError(f"image of {height}x{width} pixels is empty.")
    if max(height, width) / min(height, width) > 200:
        raise ImageBatchError(f"image of {height}x{width} pixels: aspect ratio over 200, which qwen_vl_utils and the "
                              "Qwen2.5-VL processor refuse; crop or pad it.")
    h = max(factor, round(height / factor) * factor)
    w = max(factor, round(width / factor) * factor)
    if h * w > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h = max(factor, math.floor(height / beta / factor) * factor)
        w = max(factor, math.floor(width / beta / factor) * factor)
    elif h * w < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h = math.ceil(height * beta / factor) * factor
        w = math.ceil(width * beta / factor) * factor
    return h, w


def to_rgb(image: "PIL.Image.Image") -> "PIL.Image.Image":
    """RGB as ``qwen_vl_utils.to_rgb``: RGBA composited on white through its alpha, any other mode ``convert("RGB")``.

    Parameters
    ----------
    image : PIL.Image.Image
        The image.

    Returns
    -------
    PIL.Image.Image
    """
    from PIL import Image

    im = as_pil(image)
    if im.mode == "RGBA":
        out = Image.new("RGB", im.size, (255, 255, 255))
        out.paste(im, mask=im.split()[3])
        return out
    return im.convert("RGB")


@dataclass(frozen=True)
class PreResize:
    """The resize a family's script applies before the image processor (``qwen_vl_utils.fetch_image``).

    ``__call__`` converts with :func:`to_rgb`, then ``image.resize((w, h))`` (Pillow's default filter,
    bicubic for RGB, as the source calls it) to :func:`smart_resize`'s size within
    ``[min_pixels, max_pixels]``. The processor then applies its own bounds to the result, so a
    family's number of image tokens is that of the two steps together.

    Parameters
    ----------
    min_pixels : int
        Lower bound of the pixel count.
    max_pixels : int
        Upper bound of the pixel count.
    factor : int
        Sides become multiples of it (patch size x merge size).

    Examples
    --------
    >>> pre = PreResize(*QWEN_VL_UTILS_PIXELS)
    >>> pre(blank_image((230, 150))).size       # PIL's (width, height)
    (140, 224)
    """

    min_pixels: int
    max_pixels: int
    factor: int = 28

    def size(self, height: int, width: int) -> tuple[int, int]:
        """``(height, width)`` after this resize.

        Parameters
        ----------
        height : int
            The image's height.
        width : int
            Its width.

        Returns
        -------
        tuple[int, int]
        """
        return smart_resize(height, width, min_pixels=self.min_pixels, max_pixels=self.max_pixels, factor=self.factor)

    def __call__(self, image: Any) -> "PIL.Image.Image":
        im = to_rgb(image)
        h, w = self.size(im.height, im.width)
        return im.resize((w, h))


def pixel_values(images: Sequence[Any] | Any, processor: Callable[..., Any] | None = None,
                 pre_resize: PreResize | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(pixel_values, image_grid_thw)`` of images of any size and mode, through ``processor``.

    ``processor`` is a Hugging Face image processor (the checkpoint's own; default
    :func:`default_image_processor`) or a callable ``images -> (pixel_values, image_grid_thw)``;
    ``pre_resize`` (a :class:`PreResize`) is applied to every image first, as the families' scripts do.
    A single image is a batch of one. ``pixel_values`` is float32 ``[sum_i h_i * w_i, 3 * 2 * 14 * 14]``,
    ``image_grid_thw`` int64 ``[n_images, 3]``.

    Parameters
    ----------
    images : Sequence[Any] | Any
        One image or a sequence of them.
    processor : Callable[..., Any] | None
        A Hugging Face image processor or a callable ``images -> (pixel_values, image_grid_thw)``.
    pre_resize : PreResize | None
        A resize applied to every image first.

    Returns
    -------
    tuple[torch.Tensor, torch.Tensor]
        ``pixel_values`` and ``image_grid_thw``.
    """
    if not isinstance(images, (list, tuple)):
        images = [images]
    if len(images) == 0:
        raise ImageBatchError("no images given.")
    pils = [as_pil(im) if pre_resize is None else pre_resize(im) for im in images]
    proc = default_image_processor() if processor is None else processor
    res = proc(pils, return_tensors="pt") if processor is None or hasattr(proc, "model_input_names") else proc(pils)
    if isinstance(res, tuple):
        pv, thw = res
    else:  # a BatchFeature
        pv, thw = res["pixel_values"], res["image_grid_thw"]
    return torch.as_tensor(pv), torch.as_tensor(thw).long()


def num_image_tokens(image_size: int | tuple[int, int], *, patch_size: int = 14, merge_size: int = 2) -> int:
    """Number of merged image tokens (``<|image_pad|>`` placeholders) for an image size.

    Parameters
    ----------
    image_size : int | tuple[int, int]
        Side, or ``(height, width)``, in pixels. Multiples of ``patch_size * merge_size``.
    patch_size : int
        The vision tower's patch size.
    merge_size : int
        Patches merged per side into one token.

    Returns
    -------
    int
    """
    h, w = (image_size, image_size) if isinstance(image_size, int) else image_size
    factor = patch_size * merge_size
    if h % factor or w % factor:
        raise ImageBatchError(f"image size {h}x{w} is not a multiple of {factor}; resize to a multiple of {factor}.")
    return (h // factor) * (w // factor)


def _hw(size: int | tuple[int, int]) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


def blank_image(size: int | tuple[int, int] = 112, fill: int | Sequence[int] = 0) -> np.ndarray:
    """A uniform uint8 ``H x W x 3`` image (black by default).

    Parameters
    ----------
    size : int | tuple[int, int]
        Side, or ``(height, width)``, in pixels.
    fill : int | Sequence[int]
        Grey level or RGB triple.

    Returns
    -------
    np.ndarray
    """
    h, w = _hw(size)
    img = np.empty((h, w, 3), dtype=np.uint8)
    img[...] = np.asarray(fill, dtype=np.uint8)
    return img


def noise_image(size: int | tuple[int, int] = 112, seed: int = 0) -> np.ndarray:
    """Uniform random uint8 ``H x W x 3`` noise, deterministic in ``seed``.

    Parameters
    ----------
    size : int | tuple[int, int]
        Side, or ``(height, width)``, in pixels.
    seed : int
        Seed of the draw.

    Returns
    -------
    np.ndarray
    """
    h, w = _hw(size)
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def occlude(
    image: np.ndarray, box: tuple[int, int, int, int], fill: int | Sequence[int] | str = 0, seed: int = 0
) -> np.ndarray:
    """Copy of ``image`` with ``box = (top, left, bottom, right)`` (end-exclusive) filled.

    ``fill`` is a grey level, an RGB triple, or ``"noise"`` for deterministic uniform
    noise (``seed``).  The input is not modified.

    Parameters
    ----------
    image : np.ndarray
        A uint8 ``H x W x 3`` image.
    box : tuple[int, int, int, int]
        ``(top, left, bottom, right)``, end-exclusive.
    fill : int | Sequence[int] | str
        Grey level, RGB triple or ``"noise"``.
    seed : int
        Seed of the noise fill.

    Returns
    -------
    np.ndarray
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
