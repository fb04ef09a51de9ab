"""Turning a user's files and options into (image, known mask) pairs, with one-line errors."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np

from .errors import MaskError
from .imageio import load_alpha, load_rgb
from .masks import MaskType, load_mask, mask_from_alpha

log = logging.getLogger(__name__)

_said: set[tuple[str, int, int]] = set()
_said_lock = threading.Lock()


def _first_time(key: tuple[str, int, int]) -> bool:
    """True once per key: a mask shared by a whole batch is said to be resized once, not per image."""
    with _said_lock:
        if key in _said:
            return False
        _said.add(key)
        return True


def load_pair(
    image_path: Path,
    mask_path: Path | None = None,
    mask_type: MaskType | str | None = None,
    convention: str = "white-hole",
    *,
    image_data: bytes | None = None,
    mask_data: bytes | None = None,
) -> tuple[np.ndarray, np.ndarray | MaskType]:
    """The image (HxWx3 uint8) and its known mask (HxW bool, True = known), from files or, for an
    upload, from bytes (`image_data`, `mask_data`; the paths then only name them in messages).

    The mask comes from a file or, when none is given, from the image's own transparency
    (transparent = hole). A generated mask type (its text is parsed here, ValueError if bad) is
    returned as a MaskType: the completer draws it in each face's frame (Completer.complete_many),
    which only it knows."""
    image = load_rgb(Path(image_path), data=image_data)
    h, w = image.shape[:2]
    if mask_path is not None:
        known, resized = load_mask(Path(mask_path), h, w, convention, data=mask_data)
        if resized and mask_data is None and _first_time((str(mask_path), h, w)):
            log.info("%s: mask resized to the image's %dx%d", mask_path, w, h)
    elif mask_type is not None:
        return image, MaskType.of(mask_type)
    else:
        alpha = load_alpha(Path(image_path), data=image_data)
        if alpha is None:
            raise MaskError(f"{image_path}: no mask given and the image has no transparency")
        known = mask_from_alpha(alpha)
    return image, known
