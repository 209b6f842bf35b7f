"""Building the loop's rows from prompts and images: tokenising, image preprocessing, image-token
expansion, the protocol's start state, and the choice of prompt positions to capture."""

from __future__ import annotations

from typing import Any, Callable, Sequence, Union

import numpy as np
import torch
from torch import Tensor

from latentprobe.engine.parts import ModelParts
from latentprobe.engine.protocol import initial_state
from latentprobe.engine.rows import Row
from latentprobe.errors import ImageBatchError, InputError
from latentprobe.images import to_pixel_values
from latentprobe.spec import ResolvedSpec
from latentprobe.trace import Segment

__all__ = ["ImageProcessor", "CapturePositions", "tokenize", "process_images", "expand_image_tokens",
           "capture_positions", "build_rows"]

ImageProcessor = Callable[[list[np.ndarray]], Any]
CapturePositions = Union[str, Callable[[Tensor, Tensor], Sequence[int]]]


def tokenize(tokenizer: Any, prompt: str | Sequence[int], add_special_tokens: bool = False) -> list[int]:
    """Token ids of a string prompt (no special tokens unless asked), or an id list as ints."""
    if isinstance(prompt, str):
        return list(tokenizer(prompt, add_special_tokens=add_special_tokens)["input_ids"])
    return [int(t) for t in prompt]


def process_images(imgs: list[np.ndarray], image_processor: ImageProcessor | None) -> tuple[Tensor, Tensor]:
    """``(pixel_values, image_grid_thw)``: the default Qwen2-VL preprocessing, or ``image_processor``."""
    if image_processor is None:
        try:
            pv, thw = to_pixel_values(imgs)
        except ValueError as err:
            raise ImageBatchError(f"{err}; or pass image_processor= (e.g. the checkpoint's processor).") from err
    else:
        res = image_processor(imgs)
        if isinstance(res, tuple):
            pv, thw = res
        else:  # a Hugging Face image processor's BatchFeature
            pv, thw = res["pixel_values"], res["image_grid_thw"]
    return torch.as_tensor(pv), torch.as_tensor(thw).long()


def expand_image_tokens(ids: list[int], img_tok: int, grid: Tensor, merge: int) -> list[int]:
    """Repeat each image token as many times as its image has merged patches."""
    out, k = [], 0
    for t in ids:
        if t == img_tok:
            n = int(grid[k].prod()) // (merge * merge)
            out.extend([img_tok] * n)
            k += 1
        else:
            out.append(t)
    return out


def capture_positions(capture: Any, row: Row) -> list[int]:
    """Prefix positions to record every layer at: ``"image"``, ``"prompt"`` or ``(ids, segments) -> positions``."""
    n = len(row.ids)
    if capture == "image":
        return [p for p, s in enumerate(row.segs) if s == Segment.IMAGE]
    if capture == "prompt":
        return list(range(n))
    if callable(capture):
        ps = sorted({int(p) for p in capture(torch.tensor(row.ids), torch.tensor(row.segs))})
        bad = [p for p in ps if not 0 <= p < n]
        if bad:
            raise InputError(f"example {row.example_id!r}: capture_positions returned {bad}, outside the prompt "
                             f"of length {n}.")
        return ps
    raise InputError(f"capture_positions={capture!r}; use 'image', 'prompt' or a callable (ids, segments) -> positions.")


def _images_of(images: Sequence[Any] | None, i: int) -> list[Any]:
    if images is None or images[i] is None:
        return []
    return list(images[i]) if isinstance(images[i], (list, tuple)) else [images[i]]


def build_rows(prompts: Sequence[Any], images: Sequence[Any] | None, example_ids: Sequence[str] | None, *,
               tokenizer: Any, rspec: ResolvedSpec, parts: ModelParts, image_processor: ImageProcessor | None,
               device: torch.device, dtype: torch.dtype, add_special_tokens: bool = False) -> list[Row]:
    """One row per prompt, each at the protocol's start state (see :func:`~latentprobe.engine.protocol.initial_state`)."""
    if isinstance(prompts, (str, bytes)):
        raise InputError("prompts must be a list of prompts, not a single string; wrap it: [prompt].")
    prompts = list(prompts)
    if not prompts:
        raise InputError("no prompts given.")
    if example_ids is not None and len(example_ids) != len(prompts):
        raise InputError(f"{len(example_ids)} example_ids for {len(prompts)} prompts.")
    ids_list = [tokenize(tokenizer, p, add_special_tokens) for p in prompts]
    img_tok = parts.image_token_id if parts.is_vlm else None
    if images is not None:
        if not parts.is_vlm:
            raise ImageBatchError(f"{type(parts.model).__name__} takes no images; pass images=None.")
        if len(images) != len(prompts):
            raise ImageBatchError(
                f"{len(images)} image entries for {len(prompts)} prompts; give one entry per prompt "
                "(None for a prompt without image, a list for several images)."
            )
    rows = []
    for i, ids in enumerate(ids_list):
        eid = str(example_ids[i]) if example_ids is not None else str(i)
        imgs = _images_of(images, i)
        n_slots = sum(1 for t in ids if img_tok is not None and t == img_tok)
        if n_slots != len(imgs):
            raise ImageBatchError(
                f"prompt {i} ({eid!r}) has {n_slots} image placeholder(s) but {len(imgs)} image(s); put one "
                f"image token (id {img_tok}) in the prompt per image."
            )
        image_embeds = grid = None
        if imgs:
            pv, grid = process_images([np.asarray(im) for im in imgs], image_processor)
            with torch.no_grad():
                image_embeds = parts.image_features(pv.to(device, dtype), grid.to(device))
            image_embeds = image_embeds.float().cpu()
            ids = expand_image_tokens(ids, img_tok, grid, parts.merge_size)  # type: ignore[arg-type]
        segs = [Segment.IMAGE if (img_tok is not None and t == img_tok) else Segment.TEXT for t in ids]
        start = initial_state(rspec, ids, segs, example_id=eid)
        rows.append(Row(index=i, example_id=eid, ids=start.ids, segs=start.segments, prompt_len=start.prompt_len,
                        state=start.state, image_embeds=image_embeds, grid_thw=grid))
    return rows
