"""Reading and writing images: one place that turns broken files into ImageError/OutputError."""

from __future__ import annotations

import contextlib
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ImageError, OutputError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
# Refuse images above this many pixels before decoding them (decompression bombs).
MAX_PIXELS = 100_000_000


def is_image_path(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


def list_images(root: Path) -> list[Path]:
    """Every image under root (recursive, case-insensitive extensions), in a stable order."""
    root = Path(root)
    if not root.exists():
        raise ImageError(f"{root}: no such file or directory")
    if not root.is_dir():
        raise ImageError(f"{root}: is not a folder")
    return sorted(p for p in root.rglob("*") if p.is_file() and is_image_path(p))


def _open(path: Path) -> Image.Image:
    path = Path(path)
    if not path.exists():
        raise ImageError(f"{path}: no such file")
    if path.is_dir():
        raise ImageError(f"{path}: is a folder, expected an image file")
    try:
        img = Image.open(path)
    except PermissionError as e:
        raise ImageError(f"{path}: permission denied") from e
    except UnidentifiedImageError as e:
        raise ImageError(f"{path}: not a readable image") from e
    except OSError as e:
        raise ImageError(f"{path}: cannot read ({e})") from e
    w, h = img.size
    if w * h > MAX_PIXELS:
        raise ImageError(f"{path}: image is {w}x{h} pixels, above the limit of {MAX_PIXELS:,}")
    return img


def load_rgb(path: Path, draft_size: int | None = None) -> np.ndarray:
    """Decode an image as HxWx3 uint8 RGB with EXIF orientation applied.

    draft_size lets JPEG decoding skip detail below that size (much faster for big photos)."""
    img = _open(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            if draft_size and img.format == "JPEG":
                img.draft("RGB", (draft_size, draft_size))
            img = ImageOps.exif_transpose(img)
            img = _to_rgb(img)
            arr = np.asarray(img, dtype=np.uint8)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombWarning) as e:
        raise ImageError(f"{path}: corrupt or truncated image ({e})") from e
    return arr


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit grey: scale to 8 bits rather than clip.
        a = np.asarray(img, dtype=np.float64)
        top = 65535.0 if a.max() > 255 else 255.0
        img = Image.fromarray(np.clip(a / top * 255 + 0.5, 0, 255).astype(np.uint8), "L")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA")
        background = Image.new("RGBA", img.size, (0, 0, 0, 255))
        img = Image.alpha_composite(background, img)
    return img.convert("RGB")


def load_alpha(path: Path) -> np.ndarray | None:
    """The alpha channel (HxW uint8) of an image that has transparency, else None."""
    img = _open(path)
    try:
        img = ImageOps.exif_transpose(img)
        if img.mode not in ("RGBA", "LA", "PA") and not (img.mode == "P" and "transparency" in img.info):
            return None
        return np.asarray(img.convert("RGBA"), dtype=np.uint8)[:, :, 3].copy()
    except (OSError, ValueError, SyntaxError) as e:
        raise ImageError(f"{path}: corrupt or truncated image ({e})") from e


def load_gray(path: Path) -> np.ndarray:
    """Decode an image as HxW uint8 grey (used for masks)."""
    img = _open(path)
    try:
        img = ImageOps.exif_transpose(img)
        if img.mode in ("RGBA", "LA", "PA") or img.mode.startswith("I"):
            img = _to_rgb(img)
        return np.asarray(img.convert("L"), dtype=np.uint8)
    except (OSError, ValueError, SyntaxError) as e:
        raise ImageError(f"{path}: corrupt or truncated image ({e})") from e


def atomic_write(path: Path, write) -> None:  # noqa: ANN001 - write(tmp_path) callable
    """Write via a temp file in the same folder, then rename: readers never see half a file."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise OutputError(f"{path}: cannot write ({e.strerror or e})") from e
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise OutputError(f"{path}: cannot write ({e.strerror or e})") from e
        raise


def save_image(path: Path, rgb: np.ndarray, fmt: str | None = None, **params) -> None:  # noqa: ANN003
    """Save HxWx3 (or HxW) uint8 atomically; format from the suffix unless fmt is given."""
    path = Path(path)
    fmt = fmt or Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise OutputError(f"{path}: unknown image format {path.suffix!r} (use .png or .jpg)")
    img = Image.fromarray(np.ascontiguousarray(rgb))
    atomic_write(path, lambda tmp: img.save(tmp, format=fmt, **params))
