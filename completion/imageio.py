"""Reading and writing images: one place that turns broken files into ImageError/OutputError.

Reading accepts anything Pillow decodes (grey, palette, RGBA, 16-bit, CMYK, TIFF, GIF, ...) and
returns RGB with the EXIF orientation applied; a file that is not an image, is damaged, or is larger
than MAX_PIXELS (checked from the header, before any pixel is decoded) is an ImageError naming it.
Writing goes through a temp file and a rename, so no reader ever sees half a file."""

from __future__ import annotations

import contextlib
import io
import os
import re
import socket
import struct
import tempfile
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ImageError, OutputError

# The formats folders are searched for: what `complete` reads in practice (Pillow decodes more).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif")
# Refuse images above this many pixels before decoding them (decompression bombs).
MAX_PIXELS = 100_000_000

# What Pillow raises on damaged image data besides OSError: its decoders and EXIF parser signal
# broken bytes in many ways. Caught only around Pillow's opening and decoding of a file (the
# decoded pixels' conversion, our own code, runs outside: its TypeError or IndexError is a bug).
_DECODE_ERRORS = (
    OSError,
    ValueError,
    SyntaxError,
    EOFError,
    struct.error,
    IndexError,
    KeyError,
    TypeError,
    ZeroDivisionError,
    Image.DecompressionBombError,
    Image.DecompressionBombWarning,
)

# Outputs get the permissions of an ordinary new file (mkstemp's temp files are 0600).
_UMASK = os.umask(0o022)
os.umask(_UMASK)


def _line(text: str) -> str:
    """One line: messages from Pillow or the OS sometimes span several."""
    return " ".join(str(text).split())


def is_image_path(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


def walk_images(
    root: Path, exclude: Sequence[Path] = (), others: list[tuple[str, str]] | None = None
) -> Iterator[tuple[str, list[str]]]:
    """(relative folder posix, sorted image file names) for every folder under root, in sorted
    order: the one folder walker of `batch` and of training's data listing. Prunes the
    folders in exclude (e.g. an output folder inside the input folder). Symbolic links to folders
    are followed (once per real folder). Every other path met (files of other kinds, dangling
    links, a second link to a folder already walked) goes to `others` as (relative path, reason)."""
    root = Path(root)
    if not root.exists():
        raise ImageError(f"{root}: no such file or directory")
    if not root.is_dir():
        raise ImageError(f"{root}: is not a folder")
    skip = {os.path.realpath(p) for p in exclude}
    # The folders reachable without following any link: a link to one of them is the second way
    # in, whatever the names' order, so the real path always wins (issue 22).
    own = _own_folders(root, skip)
    seen: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        rel = Path(dirpath).relative_to(root).as_posix()
        rel = "" if rel == "." else rel
        real = os.path.realpath(dirpath)
        if real in seen:  # a link loop, or a second way to a folder: its images come once
            if others is not None:
                others.append((rel, f"links to {real}, a folder already walked"))
            dirnames[:] = []
            continue
        seen.add(real)
        kept = []
        for d in sorted(dirnames):
            sub = os.path.join(dirpath, d)
            target = os.path.realpath(sub)
            if target in skip:
                continue
            if os.path.islink(sub) and target in own:
                if others is not None:
                    others.append((join_rel(rel, d), f"links to {target}, a folder walked by its own path"))
                continue
            kept.append(d)
        dirnames[:] = kept
        names = []
        for n in sorted(filenames):
            path = os.path.join(dirpath, n)
            if is_image_path(Path(n)) and os.path.isfile(path):
                names.append(n)
            elif others is not None:
                others.append((join_rel(rel, n), not_an_image(path)))
        if names:
            yield rel, names


def _own_folders(root: Path, skip: set[str]) -> set[str]:
    """Real paths of the folders under root reached through real folders only (no link followed)."""
    own: set[str] = set()
    for dirpath, dirnames, _ in os.walk(root):  # os.walk does not descend into links by default
        own.add(os.path.realpath(dirpath))
        dirnames[:] = [d for d in dirnames if os.path.realpath(os.path.join(dirpath, d)) not in skip]
    return own


def not_an_image(path: str) -> str:
    """Why a path met while walking is not an input."""
    if os.path.islink(path) and not os.path.exists(path):
        return "dangling symbolic link"
    if not os.path.isfile(path):
        return "not a regular file"
    suffix = Path(path).suffix
    kinds = ", ".join(e.lstrip(".") for e in IMAGE_EXTENSIONS)
    return f"not an image file ({suffix or 'no extension'}; images are {kinds})"


def join_rel(rel_dir: str, name: str) -> str:
    return f"{rel_dir}/{name}" if rel_dir else name


def list_images(root: Path, others: list[tuple[str, str]] | None = None) -> list[Path]:
    """Every image under root (walk_images: recursive, case-insensitive extensions, links to
    folders followed once), sorted as paths; what is not an image goes to `others`."""
    root = Path(root)
    return sorted(root / rel / n for rel, names in walk_images(root, others=others) for n in names)


def _open(path: Path, data: bytes | None = None) -> Image.Image:
    """Open an image lazily: Pillow reads only the header, so the size is checked before decoding.

    With `data`, the image is those bytes (an upload, never written to disk) and `path` only names
    it in messages."""
    path = Path(path)
    if data is None and not path.exists():
        raise ImageError(f"{path}: no such file")
    if data is None and path.is_dir():
        raise ImageError(f"{path}: is a folder, expected an image file")
    try:
        if (len(data) if data is not None else path.stat().st_size) == 0:
            raise ImageError(f"{path}: empty file (0 bytes), not an image")
        with warnings.catch_warnings():
            # MAX_PIXELS below is the limit; Pillow's lower warning threshold is not an error here.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data) if data is not None else path)
    except PermissionError as e:
        raise ImageError(f"{path}: permission denied") from e
    except Image.DecompressionBombError as e:  # over twice Pillow's limit: refused while opening
        n = re.search(r"\((\d+) pixels\)", str(e))
        size = f"{int(n.group(1)):,} pixels" if n else "too many pixels"
        raise ImageError(
            f"{path}: image has {size}, above the limit of {MAX_PIXELS:,}; refused before decoding"
        ) from e
    except UnidentifiedImageError as e:
        raise ImageError(f"{path}: not a readable image") from e
    except OSError as e:
        if e.errno is not None:  # the file system's error, not a damaged file
            raise ImageError(_line(f"{path}: cannot read ({e.strerror or e})")) from e
        raise ImageError(_line(f"{path}: corrupt or truncated image ({e})")) from e
    except _DECODE_ERRORS as e:
        raise ImageError(_line(f"{path}: corrupt or truncated image ({e})")) from e
    w, h = img.size
    if w * h > MAX_PIXELS:
        img.close()
        raise ImageError(
            f"{path}: image is {w}x{h} pixels, above the limit of {MAX_PIXELS:,}; refused before decoding"
        )
    return img


def load_rgb(path: Path, draft_size: int | None = None, data: bytes | None = None) -> np.ndarray:
    """Decode an image as HxWx3 uint8 RGB with EXIF orientation applied.

    draft_size lets JPEG decoding skip detail below that size (much faster for big photos); with
    `data`, the image is those bytes and `path` only its name. Transparent images are composited
    onto black (what the model sees)."""
    with _open(path, data) as img:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                if draft_size and img.format == "JPEG":
                    img.draft("RGB", (draft_size, draft_size))
                upright = _upright(img)
        except _DECODE_ERRORS as e:
            raise ImageError(_line(f"{path}: corrupt or truncated image ({e})")) from e
    with _converting(path):
        return np.asarray(_to_rgb(upright), dtype=np.uint8)


def _upright(img: Image.Image) -> Image.Image:
    """The pixels decoded (all of Pillow's decoding happens here: exif_transpose loads the image)
    and turned upright, as a new in-memory image."""
    return ImageOps.exif_transpose(img)


@contextlib.contextmanager
def _converting(path: Path) -> Iterator[None]:
    """Converting decoded pixels: only Pillow's refusals (OSError, ValueError) are the file's fault."""
    try:
        yield
    except (OSError, ValueError) as e:
        raise ImageError(_line(f"{path}: corrupt or truncated image ({e})")) from e


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode.startswith("I;16") or img.mode in ("I", "F"):
        # 16-bit (or 32-bit) grey: scale to 8 bits rather than clip. I;16 spans 0-65535; I and F do
        # not say their range, so values that all fit in 0-255 are taken as 8-bit data.
        a = np.nan_to_num(np.asarray(img, dtype=np.float64))
        top = 65535.0 if img.mode.startswith("I;16") or (a.size and a.max() > 255) else 255.0
        img = Image.fromarray(np.clip(a / top * 255 + 0.5, 0, 255).astype(np.uint8), "L")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (img.mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA")
        background = Image.new("RGBA", img.size, (0, 0, 0, 255))
        img = Image.alpha_composite(background, img)
    return img.convert("RGB")


def load_alpha(path: Path, data: bytes | None = None) -> np.ndarray | None:
    """The alpha channel (HxW uint8) of an image that has transparency, else None."""
    rgba = _load_rgba(path, data)
    return None if rgba is None else rgba[:, :, 3].copy()


def _load_rgba(path: Path, data: bytes | None = None) -> np.ndarray | None:
    """HxWx4 uint8, colours as stored (not composited), of an image that has transparency; else
    None."""
    with _open(path, data) as img:
        # The mode and a palette's transparency are in the header: an opaque image is not decoded.
        if img.mode not in ("RGBA", "LA", "PA") and not (img.mode == "P" and "transparency" in img.info):
            return None
        try:
            upright = _upright(img)
        except _DECODE_ERRORS as e:
            raise ImageError(_line(f"{path}: corrupt or truncated image ({e})")) from e
    with _converting(path):
        return np.asarray(upright.convert("RGBA"), dtype=np.uint8)


def load_gray(path: Path, data: bytes | None = None) -> np.ndarray:
    """Decode an image as HxW uint8 grey (used for masks)."""
    with _open(path, data) as img:
        try:
            upright = _upright(img)
        except _DECODE_ERRORS as e:
            raise ImageError(_line(f"{path}: corrupt or truncated image ({e})")) from e
    with _converting(path):
        if upright.mode in ("RGBA", "LA", "PA", "F") or upright.mode.startswith("I"):
            upright = _to_rgb(upright)
        return np.asarray(upright.convert("L"), dtype=np.uint8)


def output_error(path: Path, e: OSError) -> OutputError:
    """OutputError for an OSError while writing path, saying which ancestor is in the way if any."""
    if isinstance(e, (FileExistsError, NotADirectoryError, FileNotFoundError)):
        for parent in path.parents:
            if parent.exists() and not parent.is_dir():
                return OutputError(f"{path}: cannot write, {parent} is a file, not a folder")
    return OutputError(_line(f"{path}: cannot write ({e.strerror or e})"))


def check_writable(path: Path, folder: bool = False) -> None:
    """OutputError now if the file `path` (or, with folder=True, files inside the folder `path`)
    could not be written, so that a long run does not find out at its end. Creates nothing that
    stays: a temp file in the deepest existing folder on the way is made and removed again (mode
    bits alone do not tell: root ignores them, and read-only mounts do not show in them)."""
    path = Path(path)
    if folder and path.exists() and not path.is_dir():
        raise OutputError(f"{path}: is a file, expected a folder")
    if not folder and path.is_dir():
        raise OutputError(f"{path}: is a folder, expected a file name")
    probe = Path(os.path.abspath(path if folder else path.parent))
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise OutputError(f"{path}: cannot write, {probe} is a file, not a folder")
    try:
        fd, tmp = tempfile.mkstemp(prefix=".write-check.", suffix=".tmp", dir=probe)
    except OSError as e:
        raise OutputError(_line(f"{path}: cannot write in {probe} ({e.strerror or e})")) from e
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(tmp)


def ensure_folder(path: Path) -> Path:
    """Create a folder (and its parents) for outputs; OutputError if that is impossible."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        if path.exists() and not path.is_dir():
            raise OutputError(f"{path}: is a file, expected a folder") from e
        raise output_error(path, e) from e
    return path


# -- temp files that name their writer -----------------------------------------------------------
# `.NAME.HOST-PID.XXXXXXXX.tmp`: a cleanup can then tell a killed run's temp (its process is gone)
# from one a concurrent run is still writing. Older `.NAME.XXXXXXXX.tmp` names have no owner.
_TEMP = re.compile(r"^\.(?P<target>.+?)\.(?:(?P<host>[A-Za-z0-9_-]*)-(?P<pid>\d+)\.)?[a-z0-9_]{8}\.tmp$")
# A temp of another machine (shared folder) or without an owner is stale only after this long.
STALE_SECONDS = 3600


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", socket.gethostname())[:40]


def temp_prefix(path: Path, pid: int | None = None) -> str:
    """mkstemp's prefix for a temp file of `path` written by process `pid` (default: this one)."""
    return f".{Path(path).name}.{_host()}-{os.getpid() if pid is None else pid}."


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. another user's process: it exists
        return True
    return True


def stale_temp_target(folder: Path, name: str) -> str | None:
    """The output name a temp file in folder belongs to, if the temp is provably abandoned: its
    writer on this machine is gone, or (another machine's, or unowned) it is over STALE_SECONDS
    old. None for anything else, in particular for a temp a live process is writing."""
    m = _TEMP.match(name)
    if m is None:
        return None
    if m["pid"] is not None and m["host"] == _host():
        return None if _alive(int(m["pid"])) else m["target"]
    try:
        age = time.time() - os.stat(os.path.join(folder, name)).st_mtime
    except OSError:
        return None
    return m["target"] if age > STALE_SECONDS else None


def atomic_write(path: Path, write) -> None:  # noqa: ANN001 - write(tmp_path) callable
    """Write via a temp file in the same folder, then rename: readers never see half a file, and a
    failed or interrupted write leaves no temp file behind. Missing folders are created."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=temp_prefix(path), suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise output_error(path, e) from e
    try:
        try:
            os.fchmod(fd, 0o666 & ~_UMASK)
        finally:
            os.close(fd)
        write(tmp)
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise output_error(path, e) from e
        raise


# JPEG cannot be lossless; at 95 with full-resolution colour (4:4:4) pixels outside the hole move
# by a few levels at most, where Pillow's default (75, 4:2:0) moved most of them by up to 84.
JPEG_QUALITY = 95
# Metadata that save_image carries over, by format (others have no place for it).
_META_KEYS = {
    "PNG": ("icc_profile", "exif", "dpi"),
    "JPEG": ("icc_profile", "exif", "dpi"),
    "WEBP": ("icc_profile", "exif"),
    "TIFF": ("icc_profile", "exif", "dpi"),
}


def encoder_params(fmt: str, quality: int | None = None) -> dict:
    """How the lossy formats are written: JPEG at `quality` (default JPEG_QUALITY) with 4:4:4
    colour; WebP lossless unless a quality is given. Other formats are lossless anyway."""
    if fmt == "JPEG":
        return {"quality": quality or JPEG_QUALITY, "subsampling": 0}
    if fmt == "WEBP":
        return {"lossless": True} if quality is None else {"quality": quality}
    return {}


# The output formats offered by name in messages (Pillow writes a few more by their suffix).
OUTPUT_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp")
# Formats with a quality setting (encoder_params); the others are lossless.
QUALITY_FORMATS = ("JPEG", "WEBP")


def output_format(path: Path) -> str:
    """Pillow's format name for an output file, from its suffix; OutputError for a suffix Pillow
    cannot write, so a command can refuse it before its work rather than at its first save."""
    path = Path(path)
    ext = path.suffix.lower()
    fmt = Image.registered_extensions().get(ext)  # loads every plugin first
    if fmt is None or fmt not in Image.SAVE:
        raise OutputError(
            f"{path}: cannot write images of type {path.suffix or '(no extension)'!r}; "
            f"use one of {' '.join(OUTPUT_EXTENSIONS)}"
        )
    return fmt


def save_image(
    path: Path,
    rgb: np.ndarray,
    fmt: str | None = None,
    quality: int | None = None,
    meta: dict | None = None,
    **params,  # noqa: ANN003
) -> None:
    """Save HxWx3 (or HxW) uint8 atomically; format from the suffix unless fmt is given.

    quality: for JPEG and WebP (see encoder_params); meta: from source_meta, kept where the format
    can hold it."""
    path = Path(path)
    fmt = fmt or output_format(path)
    img = Image.fromarray(np.ascontiguousarray(rgb))
    keep = {k: v for k, v in (meta or {}).items() if k in _META_KEYS.get(fmt, ())}
    params = {**encoder_params(fmt, quality), **keep, **params}
    atomic_write(path, lambda tmp: img.save(tmp, format=fmt, **params))


def save_like_source(
    path: Path, rgb: np.ndarray, source: Path, quality: int | None = None, known: np.ndarray | None = None
) -> None:
    """Save a completion of the image file `source` as that file was: grey sources grey, with its
    ICC profile, EXIF and dpi where the output format holds them (the one rule for every output).
    With `known` (the hole came from a mask, not from the source's transparency), a transparent
    source keeps its alpha channel where the output format has one (keep_alpha)."""
    mode = image_mode(source)
    keep = known if known is not None and output_format(path) in ALPHA_FORMATS else None
    save_image(path, like_source(rgb, source, mode, keep), quality=quality, meta=source_meta(source, mode))


def like_source(
    rgb: np.ndarray, source: Path, mode: str, known: np.ndarray | None = None, data: bytes | None = None
) -> np.ndarray:
    """A completion's pixels in the layout of its source (`source`, or `data` named so), the one
    rule for saved files and the server's answers: grey sources grey (in_source_mode); with `known`
    (the hole came from a mask, not the source's transparency), a transparent source's alpha kept
    (keep_alpha)."""
    if known is not None:
        return keep_alpha(rgb, known, source, data=data, mode=mode)
    return in_source_mode(rgb, mode)


def same_file(a: Path, b: Path | None) -> bool:
    """Whether writing `a` would replace the file `b`: the same path once resolved, or (both
    existing) the same file under another name (a hard link)."""
    if b is None:
        return False
    try:
        return Path(a).resolve() == Path(b).resolve() or os.path.samefile(a, b)
    except OSError:
        return False


def source_meta(path: Path, mode: str | None = None) -> dict:
    """What an output made from the image at `path` keeps of it: the ICC profile (when it fits
    the output's colours: grey for grey sources, RGB otherwise), the EXIF data with the orientation
    reset (the pixels were turned upright when read) and the dpi. Best effort: metadata that
    cannot be parsed is left out, since the pixels themselves were read."""
    meta: dict = {}
    with _open(path) as img:
        grey = (mode or img.mode) in GREY_MODES
        icc = img.info.get("icc_profile")
        if isinstance(icc, bytes) and icc[16:20] == (b"GRAY" if grey else b"RGB "):
            meta["icc_profile"] = icc
        dpi = img.info.get("dpi")
        if dpi:
            meta["dpi"] = dpi
        try:
            exif = img.getexif()
            if len(exif):
                exif[0x0112] = 1  # Orientation: upright, as the pixels now are
                meta["exif"] = exif.tobytes()
        except _DECODE_ERRORS:
            pass
    return meta


# Single-channel source modes: their completion is written back as 8-bit grey.
GREY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16B", "I;16L"})


def image_size(path: Path, data: bytes | None = None) -> tuple[int, int]:
    """(width, height) of an image file, or of `data`, from its header (nothing decoded)."""
    img = _open(Path(path), data)
    try:
        return img.size
    finally:
        img.close()


def keep_alpha(
    rgb: np.ndarray, known: np.ndarray, path: Path, data: bytes | None = None, mode: str | None = None
) -> np.ndarray:
    """A completion of the image at `path` (or `data`) with the source's transparency kept: when
    the source has an alpha channel, RGBA (LA for grey sources) whose every known pixel, alpha and
    colour, is the source's and whose hole has the completed colour under the source's alpha.
    Otherwise in_source_mode(rgb). For a hole given by a mask; where transparency was the hole,
    the filled image is opaque and this is not used."""
    rgba = _load_rgba(path, data)  # one decode: the alpha and the colours, not darkened onto black
    mode = mode or image_mode(path, data)
    if rgba is None:
        return in_source_mode(rgb, mode)
    colour = rgba[:, :, :3].copy()
    hole = ~np.asarray(known, bool)
    colour[hole] = rgb[hole]
    del hole
    return np.dstack([in_source_mode(colour, mode), rgba[:, :, 3]])


ALPHA_FORMATS = ("PNG", "WEBP", "TIFF")


def image_mode(path: Path, data: bytes | None = None) -> str:
    """The Pillow mode of an image file, or of `data` (header only)."""
    img = _open(Path(path), data)
    try:
        return img.mode
    finally:
        img.close()


def in_source_mode(rgb: np.ndarray, mode: str) -> np.ndarray:
    """A completed RGB image in the colour layout of its source: grey sources come back grey.

    Known pixels of a grey source have R = G = B, which the grey conversion maps back exactly."""
    if mode not in GREY_MODES:
        return rgb
    import cv2  # only needed here

    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
