"""Argument checks of the built-in perturbations, run on construction (before any input is touched)."""

from __future__ import annotations

from typing import Any

from latentprobe.errors import InputError
from latentprobe.validate import integer, number


def check_int(who: str, name: str, value: Any) -> None:
    integer(value, f"{who}.{name}")


def check_name(who: str, name: Any) -> None:
    if not isinstance(name, str) or not name.strip():
        raise InputError(f"{who}.name={name!r}: use a non-empty string (it names the perturbation in results).")


def check_mapping(who: str, mapping: Any) -> None:
    if mapping is None:
        return
    if isinstance(mapping, (str, bytes)) or not hasattr(mapping, "__iter__") \
            or any(isinstance(j, bool) or not isinstance(j, int) for j in mapping):
        raise InputError(f"{who}.mapping={mapping!r}: use a tuple of example indices (ints), one per example, "
                         "or None for the seeded default.")


def check_fill(who: str, fill: Any, *, allow_noise: bool = False) -> None:
    if allow_noise and fill == "noise":
        return
    vals = fill if isinstance(fill, (tuple, list)) else (fill,)
    ok = len(vals) in (1, 3) and all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255 for v in vals)
    if not ok:
        extra = ", or 'noise'" if allow_noise else ""
        raise InputError(f"{who}.fill={fill!r}: use a grey level 0..255 or an (R, G, B) triple of 0..255{extra}.")


def check_sigma(who: str, sigma: Any) -> None:
    number(sigma, f"{who}.sigma", minimum=0, hint="pixel noise std, 0..255 scale")


def check_box(who: str, box: Any) -> None:
    if isinstance(box, str):  # named boxes are resolved per example by box_for (subclasses add names)
        return
    if not isinstance(box, (tuple, list)) or len(box) != 4 \
            or any(isinstance(v, bool) or not isinstance(v, int) for v in box):
        raise InputError(f"{who}.box={box!r}: use a (top, left, bottom, right) tuple of 4 ints (end-exclusive) or "
                         "'center'.")
    top, left, bottom, right = box
    if top < 0 or left < 0 or bottom <= top or right <= left:
        raise InputError(f"{who}.box={tuple(box)!r}: need 0 <= top < bottom and 0 <= left < right (pixels, "
                         "end-exclusive).")
