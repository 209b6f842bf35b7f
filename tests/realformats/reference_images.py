"""The authors' two-stage image sizing, written here from the published code (independent of latentprobe).

Stage 1, ``qwen_vl_utils`` (``process_vision_info`` -> ``fetch_image``; the Qwen2.5-VL-era
``qwen-vl-utils/src/qwen_vl_utils/vision_process.py``, read in a copy of ``QwenLM/Qwen2.5-VL`` at
``spectralflight/Qwen2.5-VL@bc9f54a2``): ``IMAGE_FACTOR = 28``, ``MIN_PIXELS = 4 * 28 * 28``,
``MAX_PIXELS = 16384 * 28 * 28``; ``smart_resize`` rounds each side to the factor (at least the factor),
then floors after scaling down to ``max_pixels`` or ceils after scaling up to ``min_pixels``; ``to_rgb``
composites RGBA on white; ``image.resize((w, h))`` with Pillow's default filter. Monet
(``inference/load_and_gen_vllm.py:85``), LVR (``evaluation/evaluation.py:128``) and Mirage (``src/test.py:55``)
call it with messages that carry no ``min_pixels``/``max_pixels``, so the defaults apply.

Stage 2, the Qwen2-VL image processor on the already resized image: transformers' ``smart_resize``
(``models/qwen2_vl/image_processing_qwen2_vl.py``: ``round(height / factor) * factor`` without the lower
bound, then the same floor / ceil) with the processor's bounds; for Monet vLLM's
``mm_processor_kwargs={"min_pixels": 256*28*28, "max_pixels": 8192*28*28}``
(``inference/load_and_gen_vllm.py:31-32, 49-52``). vLLM takes the image's token count from the processor's
``image_grid_thw`` (``vllm/model_executor/models/qwen2_vl.py``, ``get_replacement_qwen2vl``).
"""

from __future__ import annotations

import math

from PIL import Image

FACTOR = 28
QWEN_VL_UTILS_MIN = 4 * 28 * 28
QWEN_VL_UTILS_MAX = 16384 * 28 * 28
MONET_VLLM = (256 * 28 * 28, 8192 * 28 * 28)


def qwen_vl_utils_size(height: int, width: int, min_pixels: int = QWEN_VL_UTILS_MIN,
                       max_pixels: int = QWEN_VL_UTILS_MAX) -> tuple[int, int]:
    """``qwen_vl_utils.smart_resize`` (stage 1)."""
    assert max(height, width) / min(height, width) <= 200
    h_bar = max(FACTOR, round(height / FACTOR) * FACTOR)
    w_bar = max(FACTOR, round(width / FACTOR) * FACTOR)
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(FACTOR, math.floor(height / beta / FACTOR) * FACTOR)
        w_bar = max(FACTOR, math.floor(width / beta / FACTOR) * FACTOR)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / FACTOR) * FACTOR
        w_bar = math.ceil(width * beta / FACTOR) * FACTOR
    return h_bar, w_bar


def processor_size(height: int, width: int, min_pixels: int, max_pixels: int) -> tuple[int, int]:
    """transformers' Qwen2-VL ``smart_resize`` (stage 2)."""
    h_bar = round(height / FACTOR) * FACTOR
    w_bar = round(width / FACTOR) * FACTOR
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(FACTOR, math.floor(height / beta / FACTOR) * FACTOR)
        w_bar = max(FACTOR, math.floor(width / beta / FACTOR) * FACTOR)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / FACTOR) * FACTOR
        w_bar = math.ceil(width * beta / FACTOR) * FACTOR
    return h_bar, w_bar


def two_stage_tokens(height: int, width: int, processor_bounds: tuple[int, int] = MONET_VLLM) -> int:
    """Image tokens of a ``height x width`` image through both stages (merged 2x2 patches of 14 px)."""
    h1, w1 = qwen_vl_utils_size(height, width)
    h2, w2 = processor_size(h1, w1, *processor_bounds)
    return (h2 // FACTOR) * (w2 // FACTOR)


def one_stage_tokens(height: int, width: int, processor_bounds: tuple[int, int] = MONET_VLLM) -> int:
    """Image tokens when only the processor resizes (what a single resize gives)."""
    h, w = processor_size(height, width, *processor_bounds)
    return (h // FACTOR) * (w // FACTOR)


def fetch_image(image: Image.Image) -> Image.Image:
    """``qwen_vl_utils.fetch_image`` for a PIL image with no size keys: ``to_rgb``, then the stage-1 resize."""
    if image.mode == "RGBA":
        rgb = Image.new("RGB", image.size, (255, 255, 255))
        rgb.paste(image, mask=image.split()[3])
    else:
        rgb = image.convert("RGB")
    width, height = rgb.size
    h, w = qwen_vl_utils_size(height, width)
    return rgb.resize((w, h))
