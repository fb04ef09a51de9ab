"""`completion serve`: one page to paint the hole, and an HTTP API, over a model loaded once.

Requests queue for one model worker: a thread that owns the Completer and runs every job (decoding,
face finding, completion, PNG encoding) one at a time, so the networks and large decoded images are
never used by two requests at once. A body is received first, into memory, up to `max_upload` bytes
(413 beyond) and within `upload_timeout` seconds (408 beyond); at most `max_uploads` are received at
once (503 beyond), so clients that send slowly or not at all hold no place in the queue. Only a
request whose body has arrived and parses takes one of the `queue_size` places (503 when all are
taken). A job whose client goes away is dropped if it has not started, and stopped at its next
search step if it has. Images above `max_pixels` are refused from their header. Nothing uploaded
touches the disk, and no path a client names is ever opened (samples come from a fixed list)."""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import contextlib
import ctypes
import ctypes.util
import errno
import functools
import io
import logging
import queue
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from PIL import Image
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, WithJsonSchema
from pydantic_core import PydanticCustomError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import ClientDisconnect

from . import __version__
from .complete import Completer, Completion, FaceSpec
from .config import SEED_MAX
from .device import CpuMeter, set_threads
from .errors import CompletionError, ServeError
from .faces import detect_faces
from .imageio import image_mode, image_size, like_source, load_alpha, load_rgb
from .inputs import load_pair
from .masks import CONVENTIONS, MaskType, mask_to_image
from .options import CompletionOptions, spec_of
from .photo import Box, parse_box

log = logging.getLogger(__name__)

# A request body (image + mask + fields) above this is refused with 413; 20 MiB holds a 12-megapixel
# PNG photo with room to spare.
MAX_UPLOAD = 20 * 1024 * 1024
# Requests waiting or running at once; more get 503. Each holds at most MAX_UPLOAD bytes until the
# worker takes it.
QUEUE_SIZE = 8
# How often an idle worker reads the machine's load, so a job starting after a long wait sees
# what others use now rather than an average over the wait.
METER_SECONDS = 2.0
# Bodies being received at once (more get 503), and the seconds one may take (408 beyond): a client
# that sends slowly or stops holds a reception place for at most that long, never a queue place.
MAX_UPLOADS = 16
UPLOAD_TIMEOUT = 30.0
# The server's own pixel limit, below imageio.MAX_PIXELS: a 6000x4000 photo passes, and one
# request's working set stays under about 1 GB (benchmarks/serve_abuse.py).
MAX_PIXELS = 25_000_000
MAX_SAMPLES = 8
MAX_ITERATIONS = 1000
# Bundled pictures the page offers; the only files a client can ask for, by these names.
PICTURES = ("face_01.png", "face_02.png", "face_03.png", "face_04.png", "photo.png")

T = TypeVar("T")


class ApiError(Exception):
    """A request the server refuses: HTTP status and the one-line message sent as {"error": ...}."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = " ".join(str(message).split())


class QueueFull(Exception):
    """Every place in the queue is taken."""


class Abandoned(Exception):
    """The client of a running job went away: raised between search steps to stop it."""


def _trim_memory() -> None:
    """Give freed heap memory back to the system (glibc keeps it otherwise, so the resident size
    after one large request would stay near its peak); a no-op where there is no malloc_trim."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        lib = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return lib if lib is not None and hasattr(lib, "malloc_trim") else None


_LIBC = _libc()


class ModelWorker:
    """One thread that runs jobs in arrival order, with a bounded number admitted at a time."""

    def __init__(self, capacity: int, threads: int = 0, cpu: bool = True) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self.capacity = capacity
        # Each job runs on `threads` CPU threads, or on the cores other processes leave free as
        # it starts, measured while the worker waits (device.CpuMeter): a server beside another
        # torch job that took every core would make both crawl.
        self.threads, self.cpu = threads, cpu
        self._meter = CpuMeter()
        self.last_threads = 0
        self._slots = threading.BoundedSemaphore(capacity)
        self._admitted = 0
        self._lock = threading.Lock()
        self._jobs: queue.Queue = queue.Queue()
        self.last_seconds = 0.0
        self._thread = threading.Thread(target=self._run, name="completion-model-worker", daemon=True)
        self._thread.start()

    @property
    def admitted(self) -> int:
        """Requests holding a place: waiting, being read, or running."""
        return self._admitted

    def admit(self) -> None:
        """Take a place in the queue or raise QueueFull; every admit() is followed by one release()."""
        if not self._slots.acquire(blocking=False):
            raise QueueFull
        with self._lock:
            self._admitted += 1

    def release(self) -> None:
        with self._lock:
            self._admitted -= 1
        self._slots.release()

    def submit(self, fn: Callable[[], T]) -> concurrent.futures.Future[T]:
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._jobs.put((fn, future))
        return future

    def _run(self) -> None:
        while True:
            try:
                job = self._jobs.get(timeout=METER_SECONDS)
            except queue.Empty:
                self._meter.others()  # keeps the measurement recent
                continue
            if job is None:
                return
            fn, future = job
            if not future.set_running_or_notify_cancel():
                continue
            if self.cpu:
                self.last_threads = set_threads(self.threads, self._meter)
            t0 = time.perf_counter()
            try:
                future.set_result(fn())
            except BaseException as e:  # handed to the request that asked; the worker carries on
                future.set_exception(e)
            finally:
                self.last_seconds = time.perf_counter() - t0
                del job, fn, future  # nothing of a finished request stays referenced here
                _trim_memory()

    def close(self) -> None:
        self._jobs.put(None)
        self._thread.join(timeout=30)


# -- request parsing --------------------------------------------------------------------------------


@dataclass
class Upload:
    image: bytes
    mask: bytes | None
    fields: dict[str, str]


async def read_upload(request: Request, limit: int) -> Upload:
    """The multipart body, in memory: ApiError 413 beyond `limit` bytes, 400 when malformed."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"request body is {int(declared):,} bytes, above the limit of {limit:,}")
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise ApiError(413, f"request body is above the limit of {limit:,} bytes")
    except ClientDisconnect:
        raise ApiError(400, "the client went away before the upload ended") from None
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        raise ApiError(400, "expected a multipart/form-data body (fields: image, mask, mask_type, ...)")

    pending = [bytes(body)]  # handed to the parser once, then dropped
    del body

    async def stream():  # noqa: ANN202 - the parser's async byte stream, from memory
        yield pending.pop()

    parser = MultiPartParser(request.headers, stream(), max_files=2, max_fields=16, max_part_size=4096)
    # Spool file parts in memory up to the body limit: an upload never reaches a temporary file.
    parser.spool_max_size = limit
    try:
        form = await parser.parse()
    except MultiPartException as e:
        raise ApiError(400, f"malformed multipart body: {e.message}") from None
    try:
        files: dict[str, bytes] = {}
        fields: dict[str, str] = {}
        for key, value in form.multi_items():
            if key in files or key in fields:  # which one was meant cannot be told: refuse both
                raise ApiError(400, f"the field {key!r} is given twice")
            if isinstance(value, str):
                fields[key] = value
            else:
                files[key] = await value.read()
        if "image" not in files:
            raise ApiError(400, "missing the 'image' file field")
        unknown = set(files) - {"image", "mask"}
        if unknown:
            raise ApiError(400, f"unknown file field {sorted(unknown)[0]!r} (expected image and mask)")
        return Upload(files["image"], files.get("mask"), fields)
    finally:
        await form.close()


def _fail(text: str) -> PydanticCustomError:
    """A validation error whose message is `text` as it stands (the template is never formatted)."""
    return PydanticCustomError("field", "{text}", {"text": text})


def _api_int(name: str, high: int | None = None) -> Any:  # noqa: ANN401 - an Annotated type
    """An integer form field with CompletionOptions.<name>'s range (its upper end narrowed to `high`:
    the API's own limit), help and default: the option's one declaration (options.py)."""
    f = next(f for f in fields(CompletionOptions) if f.name == name)
    spec = spec_of(f)
    ends = [e for e in (spec.high if spec else None, high) if e is not None]
    if spec is None or spec.low is None or not ends:
        raise TypeError(f"{name} is not a bounded integer option")  # a mistake in this file
    lo, hi = int(spec.low), int(min(ends))

    def parse(raw: object) -> int:
        if isinstance(raw, str):
            try:
                raw = int(raw)
            except ValueError:
                raise _fail(f"{raw!r} is not an integer") from None
        if not isinstance(raw, int) or isinstance(raw, bool):
            raise _fail(f"{raw!r} is not an integer")
        if not lo <= raw <= hi:
            raise _fail(f"{raw} is not in the range {lo}<=x<={hi}")
        return raw

    return Annotated[int, Field(ge=lo, le=hi, description=spec.help), BeforeValidator(parse)]


def _choice(name: str, choices: tuple[str, ...]) -> BeforeValidator:
    def parse(raw: object) -> object:
        if raw not in choices:
            raise _fail(f"{raw!r} is not one of {', '.join(choices)}")
        return raw

    return BeforeValidator(parse)


def _to_bool(raw: object) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).lower()
    if text in ("0", "false", "no", "off"):
        return False
    if text in ("1", "true", "yes", "on"):
        return True
    raise _fail(f"{text!r} is not a boolean (true or false)")


def _to_mask_type(raw: object) -> MaskType:
    try:
        return MaskType.of(raw)
    except ValueError as e:
        raise _fail(str(e)) from None


def _to_box(raw: object) -> Box:
    if isinstance(raw, Box):
        return raw
    try:
        return parse_box(str(raw))
    except ValueError as e:
        raise _fail(str(e)) from None


FORMATS = ("auto", "png", "json")
# How JSON carries each candidate: its whole image, or only the rectangles that differ from the
# input (a 6000x4000 photo's eyes, not 8 full-size PNGs).
REGIONS = ("full", "changed")
# Changed pixels are gathered on a grid of TILE px: a thin or scattered hole comes back as a few
# tight rectangles rather than one box over its whole extent.
TILE = 128
_SamplesField = _api_int("samples", MAX_SAMPLES)
_SeedField = _api_int("seed")
_IterationsField = _api_int("iterations", MAX_ITERATIONS)


class CompleteRequest(BaseModel):
    """The form fields of POST /api/complete (the files, image and mask, come beside them). Parsing,
    validation and the OpenAPI description all come from this model; a blank field is its default."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    mask_type: Annotated[
        # Described as the text it is sent as (a MaskType has no JSON schema of its own); the
        # title as pydantic gives a plain field, so /openapi.json says what it said for a str.
        Annotated[MaskType, WithJsonSchema({"type": "string"})] | None,
        BeforeValidator(_to_mask_type),
        Field(title="Mask Type", description="a generated mask instead: center, left, eyes, random:0.8, ..."),
    ] = None
    mask_convention: Annotated[Literal[CONVENTIONS], _choice("mask_convention", CONVENTIONS)] = "white-hole"
    samples: _SamplesField = 1
    seed: _SeedField = 0
    iterations: _IterationsField | None = Field(None, description="Adam steps on z (default: the server's).")
    box: Annotated[
        Box | None,
        BeforeValidator(_to_box),
        WithJsonSchema({"type": "string", "description": "the face's box x,y,w,h (skips detection)"}),
    ] = None
    aligned: Annotated[
        bool, BeforeValidator(_to_bool), Field(description="the image is an aligned face crop")
    ] = False
    format: Annotated[
        Literal[FORMATS],
        _choice("format", FORMATS),
        Field(description="auto: image/png for samples=1 with regions=full, JSON otherwise"),
    ] = "auto"
    regions: Annotated[
        Literal[REGIONS],
        _choice("regions", REGIONS),
        Field(
            description="JSON only. full: each candidate's whole image as png; changed: only the "
            "rectangles that differ from the input, each candidate's regions [{x, y, w, h, png}]"
        ),
    ] = "full"


def _first_error(e: ValidationError) -> str:
    """One line for the first problem: unknown fields before bad values (in field order)."""
    errors = sorted(e.errors(), key=lambda d: (d["type"] != "extra_forbidden", str(d["loc"][0])))
    first = errors[0]
    name = str(first["loc"][0])
    if first["type"] == "extra_forbidden":
        return f"unknown field {name!r}"
    return f"{name}: {first['msg']}"


@dataclass
class CompleteJob:
    """What one completion request asks for, validated before it reaches the worker."""

    image: bytes
    mask: bytes | None
    request: CompleteRequest
    iterations: int
    fmt: str  # png or json, never auto


def check_pixels(up: Upload, max_pixels: int) -> None:
    """ApiError 400 for an image or mask above the server's pixel limit, from its header alone."""
    for name, data in (("image", up.image), ("mask", up.mask)):
        if data is None:
            continue
        w, h = image_size(Path(name), data=data)
        if w * h > max_pixels:
            raise ApiError(
                400,
                f"{name}: image is {w}x{h} pixels, above this server's limit of {max_pixels:,}; "
                "refused before decoding",
            )


def _validate(up: Upload) -> CompleteRequest:
    """The form fields as a CompleteRequest, read alike for /api/complete and /api/mask (a blank
    field is its default); ApiError 400 otherwise."""
    try:
        return CompleteRequest.model_validate({k: v.strip() for k, v in up.fields.items() if v.strip()})
    except ValidationError as e:
        raise ApiError(400, _first_error(e)) from None


def parse_job(up: Upload, default_iterations: int) -> CompleteJob:
    req = _validate(up)
    if req.mask_type is not None and up.mask is not None:
        raise ApiError(400, "give either mask or mask_type, not both")
    if req.box is not None and req.aligned:
        raise ApiError(400, "give either box or aligned, not both")
    light = req.regions == "changed"
    fmt = req.format if req.format != "auto" else "png" if req.samples == 1 and not light else "json"
    if fmt == "png" and req.samples > 1:
        raise ApiError(400, "format=png returns one image: ask for samples=1, or format=json")
    if fmt == "png" and light:
        raise ApiError(400, "regions=changed is a JSON answer: ask for format=json")
    iterations = default_iterations if req.iterations is None else req.iterations
    return CompleteJob(up.image, up.mask, req, iterations, fmt)


# The fields of /api/mask: what decides where a generated mask is drawn.
MASK_FIELDS = ("mask_type", "box", "aligned", "seed")


def parse_mask_job(up: Upload) -> CompleteRequest:
    """The fields of POST /api/mask, validated as /api/complete's (ApiError 400 otherwise)."""
    unknown = sorted(set(up.fields) - set(MASK_FIELDS)) + (["mask"] if up.mask is not None else [])
    if unknown:
        raise ApiError(400, f"unknown field {unknown[0]!r} (expected image, {', '.join(MASK_FIELDS)})")
    req = _validate(up)
    if req.mask_type is None:
        raise ApiError(400, "mask_type: the generated mask to draw is missing")
    if req.box is not None and req.aligned:
        raise ApiError(400, "give either box or aligned, not both")
    return req


# -- the work, in the worker thread -------------------------------------------------------------------


def encode_png(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    # Level 3: about as small as the default 6 on photos, several times faster to write.
    Image.fromarray(np.ascontiguousarray(rgb)).save(buf, format="PNG", compress_level=3)
    return buf.getvalue()


def changed_regions(changed: np.ndarray, tile: int = TILE) -> list[tuple[int, int, int, int]]:
    """Rectangles (x, y, w, h) covering every True pixel of `changed` (HxW bool): per band of `tile`
    rows, each run of grid tiles holding changed pixels, cut to those pixels' bounds."""
    rows = np.flatnonzero(changed.any(axis=1))
    if rows.size == 0:
        return []
    out = []
    for y0 in range(int(rows[0]) // tile * tile, int(rows[-1]) + 1, tile):
        band = changed[y0 : y0 + tile]
        cols = band.any(axis=0)
        if not cols.any():
            continue
        width = band.shape[1]
        tiles = np.add.reduceat(cols, np.arange(0, width, tile)) > 0
        k = 0
        while k < tiles.size:
            if not tiles[k]:
                k += 1
                continue
            end = k
            while end + 1 < tiles.size and tiles[end + 1]:
                end += 1
            x0, x1 = k * tile, min(width, (end + 1) * tile)
            xs = np.flatnonzero(cols[x0:x1])
            ys = np.flatnonzero(band[:, x0:x1].any(axis=1))
            out.append((x0 + int(xs[0]), y0 + int(ys[0]), int(xs[-1] - xs[0]) + 1, int(ys[-1] - ys[0]) + 1))
            k = end + 1
    return out


def run_job(
    completer: Completer, job: CompleteJob, cancelled: threading.Event | None = None
) -> dict[str, Any]:
    """One completion, in the worker; Abandoned at the next search step once `cancelled` is set."""
    req = job.request
    mask = Path("mask") if job.mask is not None else None
    image, known = load_pair(
        Path("image"), mask, req.mask_type, req.mask_convention, image_data=job.image, mask_data=job.mask
    )
    mode = image_mode(Path("image"), data=job.image)
    c = completer.with_options(seed=req.seed, samples=req.samples, iterations=job.iterations)

    def stop_if_gone(step: int, generated: object) -> None:
        if cancelled is not None and cancelled.is_set():
            raise Abandoned

    res: Completion = c.complete_many(
        [(image, known)], stop_if_gone, 1, aligned=req.aligned, box=req.box, names=["image"]
    )[0]
    width, height = int(image.shape[1]), int(image.shape[0])
    del image, known  # the candidates hold what is needed; the decoded input can go
    # A mask given beside a transparent image leaves its transparency as it was (only without
    # one is the transparency the hole).
    alpha = mask is not None or req.mask_type is not None
    # The source's transparency, decoded once here: like_source given a hole would decode the whole
    # upload again for every candidate, if only to find that an opaque source has none.
    source_alpha = load_alpha(Path("image"), data=job.image) if alpha or req.regions == "changed" else None
    keep = alpha and source_alpha is not None

    def picture(cand: Completion) -> np.ndarray:
        return like_source(cand.image, Path("image"), mode, cand.hole_known if keep else None, data=job.image)

    candidates = res.candidates or [res]
    del res
    regions: list[tuple[int, int, int, int]] | None = None
    if req.regions == "changed":
        # Outside the hole a candidate is the input, except that where the transparency was the
        # hole the answer is opaque: pixels that were not fully opaque changed too.
        known = candidates[0].hole_known
        changed = np.zeros((height, width), bool) if known is None else ~known
        if not alpha and source_alpha is not None:
            changed |= source_alpha < 255
        regions = changed_regions(changed, TILE)
        del changed
    del source_alpha
    # The corners of each face crop the model completed, for the page to outline.
    crops = [[[round(x, 1), round(y, 1)] for x, y in f.framing.corners()] for f in candidates[0].faces]
    outside = candidates[0].outside
    out = []
    while candidates:  # each full-size candidate is dropped once encoded
        cand = candidates.pop(0)
        out.append({"seed": cand.seed, "loss": round(cand.loss, 4), "steps": cand.steps})
        full = picture(cand)
        if regions is None:
            out[-1]["png"] = encode_png(full)
        else:
            out[-1]["regions"] = [
                {"x": x, "y": y, "w": w, "h": h, "png": encode_png(full[y : y + h, x : x + w])}
                for x, y, w, h in regions
            ]
        del cand, full
    return {"width": width, "height": height, "crops": crops, "outside": outside, "candidates": out}


# CLI flags in library messages, and what the API calls them: each interface names its own fields.
_API_WORDS = (
    ("--box x,y,w,h", "the field box=x,y,w,h"),
    ("--box", "the field box"),
    ("--aligned", "aligned=true"),
    ("--mask-type", "the field mask_type"),
    ("--mask", "the field mask"),
    ("--face", "the field box"),
)


def api_message(message: str) -> str:
    """A library message with the CLI's flags replaced by the API's field names."""
    for flag, field_name in _API_WORDS:
        message = re.sub(re.escape(flag) + r"(?![\w-])", field_name, message)
    return message


def hole_png(completer: Completer, data: bytes, req: CompleteRequest) -> bytes:
    """The hole /api/complete would fill for req.mask_type, drawn as /api/complete draws it (on
    every face found, or the box, with the seed): a PNG of the image's size, white = hole."""
    assert req.mask_type is not None  # parse_mask_job refuses a request without one
    image = load_rgb(Path("image"), data=data)
    drawer = completer.with_options(seed=req.seed)
    known, _ = drawer.draw_mask(image, req.mask_type, FaceSpec(req.aligned, req.box), "image")
    return encode_png(mask_to_image(known))


def face_boxes(data: bytes) -> dict[str, Any]:
    image = load_rgb(Path("image"), data=data)
    faces = detect_faces(image, frame=False)  # boxes only: the framer is not needed
    return {
        "width": int(image.shape[1]),
        "height": int(image.shape[0]),
        "faces": [{"x": f.box.x, "y": f.box.y, "w": f.box.w, "h": f.box.h} for f in faces],
    }


# -- the application ----------------------------------------------------------------------------------


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": " ".join(str(message).split())}, status_code=status, headers=headers)


def picture_files() -> dict[str, bytes]:
    """The bundled pictures, by name (package data)."""
    folder = resources.files("completion") / "web" / "samples"
    return {name: (folder / name).read_bytes() for name in PICTURES if (folder / name).is_file()}


def _complete_body() -> dict[str, Any]:
    """The request body of /api/complete for /openapi.json: the two files, then CompleteRequest's
    fields as the model itself describes them."""
    schema = CompleteRequest.model_json_schema()
    files = {
        "image": {"type": "string", "format": "binary", "description": "the photo or face"},
        "mask": {
            "type": "string",
            "format": "binary",
            "description": "mask image, white = hole (resized if it has the image's aspect)",
        },
    }
    form = {"type": "object", "required": ["image"], "properties": {**files, **schema["properties"]}}
    return {"required": True, "content": {"multipart/form-data": {"schema": form}}}


def _error_response(why: str) -> dict[str, Any]:
    """An error answer as /openapi.json describes it: the body _error sends."""
    return {
        "description": f'{why}: {{"error": "<one line>"}}',
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


# What every endpoint that reads an upload (through _Gate) can answer instead of its 200.
UPLOAD_ERRORS: dict[int | str, dict[str, Any]] = {
    code: _error_response(why)
    for code, why in (
        (400, "bad input"),
        (408, "the body did not arrive within the upload timeout"),
        (413, "request body above the upload limit"),
        (503, "the queue, or the uploads being received, are full; try again later"),
    )
}
COMPLETE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "format=png: the completed image (headers X-Seed, X-Loss). format=json: "
        '{"width", "height", "crops" (each completed face crop\'s corners), "outside", "seconds", '
        '"candidates": [{"seed", "loss", "steps", "png" (base64)}], lowest loss first}; with '
        'regions=changed each candidate has "regions": [{"x", "y", "w", "h", "png" (base64)}] '
        "instead of png: the rectangles that differ from the input, pasted over it",
        "content": {"image/png": {}, "application/json": {}},
    },
    **UPLOAD_ERRORS,
}
FACES_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": '{"width", "height", "faces": [{"x", "y", "w", "h"}]}, largest first',
        "content": {"application/json": {}},
    },
    **UPLOAD_ERRORS,
}
MASK_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "the hole, white on black, at the image's size", "content": {"image/png": {}}},
    **UPLOAD_ERRORS,
}
ERROR_SCHEMA = {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}}


def create_app(
    completer: Completer,
    max_upload: int = MAX_UPLOAD,
    queue_size: int = QUEUE_SIZE,
    *,
    max_pixels: int = MAX_PIXELS,
    max_uploads: int = MAX_UPLOADS,
    upload_timeout: float = UPLOAD_TIMEOUT,
    threads: int = 0,
) -> FastAPI:
    """The web application around a loaded model (its worker thread starts here); each job runs
    on `threads` CPU threads, or 0: the cores other processes leave free (device.free_threads)."""
    worker = ModelWorker(queue_size, threads, cpu=completer.model.device.type == "cpu")
    limits = Limits(max_upload, max_pixels, max_uploads, upload_timeout)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):  # noqa: ANN202
        yield
        worker.close()

    app = FastAPI(
        lifespan=lifespan,
        # FastAPI's /docs and /redoc pages load their scripts from a CDN; the server works offline,
        # so only the OpenAPI description itself is served, at /openapi.json.
        docs_url=None,
        redoc_url=None,
        title="dcgan-completion",
        version=__version__,
        description='Fill holes in face photos with a DCGAN. Errors are JSON {"error": "<one line>"}.',
    )
    app.state.worker = worker
    gate = _Gate(worker, limits)
    app.state.gate = gate
    _add_error_handlers(app)
    _add_pages(app, completer, gate)
    _add_work(app, completer, gate)
    _describe(app)
    return app


def _describe(app: FastAPI) -> None:
    """/openapi.json as the server answers: its validation errors are 400 (never FastAPI's 422),
    and every error body is {"error": ...}."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = build()
            for path in spec.get("paths", {}).values():
                for op in path.values():
                    responses = op.get("responses", {})
                    responses.pop("422", None)
            schemas = spec.setdefault("components", {}).setdefault("schemas", {})
            for name in ("HTTPValidationError", "ValidationError"):
                schemas.pop(name, None)
            schemas["Error"] = ERROR_SCHEMA
            app.openapi_schema = spec
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _add_error_handlers(app: FastAPI) -> None:
    """Every error, FastAPI's own included, as {"error": "<one line>"}."""

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # exc.headers carries, among others, the Allow header of a 405.
        return _error(exc.status_code, str(exc.detail), headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path"))
        return _error(400, f"{where}: {first.get('msg', 'invalid request')}")


@dataclass(frozen=True)
class Limits:
    max_upload: int
    max_pixels: int
    max_uploads: int
    upload_timeout: float


class _Gate:
    """The way into the worker: receive the body (bounded in number, size and time), then take a
    queue place and run the work there, stopping it when the client goes away. ApiErrors and
    library errors become JSON responses."""

    def __init__(self, worker: ModelWorker, limits: Limits) -> None:
        self.worker = worker
        self.limits = limits
        self.receiving = 0  # bodies being received now (the event loop's thread alone counts)

    async def run(
        self, request: Request, work: Callable[[Any, threading.Event], T], reader: Callable
    ) -> T | Response:
        worker, limits = self.worker, self.limits
        if self.receiving >= limits.max_uploads:
            return _error(
                503, f"the server is busy ({limits.max_uploads} uploads arriving); try again shortly"
            )
        self.receiving += 1
        try:
            try:
                up = await asyncio.wait_for(reader(request), limits.upload_timeout)
            except asyncio.TimeoutError:
                return _error(408, f"the request body did not arrive within {limits.upload_timeout:g} s")
            finally:
                self.receiving -= 1
            try:
                worker.admit()
            except QueueFull:
                return _error(
                    503, f"the server is busy ({worker.capacity} requests queued); try again shortly"
                )
            cancelled = threading.Event()
            future = worker.submit(functools.partial(work, up, cancelled))
            del up  # the job holds the body now
            # The place is given back when the job ends, not when this handler does: a client
            # that goes away must not let more jobs pile up in the worker than the queue allows.
            future.add_done_callback(lambda _: worker.release())
            return await _unless_gone(request, future, cancelled)
        except Abandoned:
            return _error(499, "the client went away")  # nobody reads it
        except ApiError as e:
            return _error(e.status, e.message)
        except CompletionError as e:
            return _error(400, api_message(str(e)))


async def _unless_gone(
    request: Request, future: concurrent.futures.Future[T], cancelled: threading.Event
) -> T:
    """The job's result; if the client disconnects first, the job is cancelled (dropped before it
    starts, or stopped at its next search step: run_job) and Abandoned raised."""
    result = asyncio.wrap_future(future)
    gone = asyncio.ensure_future(_disconnect(request))
    try:
        await asyncio.wait({result, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not result.done():
            cancelled.set()
            future.cancel()  # not started yet: the worker skips it
        gone.cancel()
    if not result.done():
        result.cancel()
        raise Abandoned
    return result.result()


async def _disconnect(request: Request) -> None:
    """Returns when the client disconnects (the body is already read: nothing else can arrive)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


def _add_pages(app: FastAPI, completer: Completer, gate: _Gate) -> None:
    """The page, /api/health and the bundled pictures: nothing that runs the model."""
    pictures = picture_files()
    worker, limits = gate.worker, gate.limits

    @app.api_route("/", methods=["GET", "HEAD"], response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:
        html = (resources.files("completion") / "web" / "index.html").read_text(encoding="utf-8")
        return HTMLResponse(html)

    @app.get("/api/health")
    async def health() -> dict[str, Any]:
        """Liveness, the model, the queue and the limits."""
        cfg = completer.model.config
        return {
            "status": "ok",
            "version": __version__,
            "model": completer.model.path.name if completer.model.path else None,
            "image_size": cfg.image_size,
            "device": str(completer.model.device),
            "iterations": completer.options.iterations,
            "queue": {"admitted": worker.admitted, "capacity": worker.capacity},
            "uploads": {"receiving": gate.receiving, "capacity": limits.max_uploads},
            "last_seconds": round(worker.last_seconds, 3),
            "max_upload_bytes": limits.max_upload,
            "max_pixels": limits.max_pixels,
            "upload_timeout_s": limits.upload_timeout,
            "max_samples": MAX_SAMPLES,
            "max_iterations": MAX_ITERATIONS,
            "max_seed": SEED_MAX,
        }

    @app.get("/api/samples")
    async def sample_list() -> dict[str, list[str]]:
        """The bundled sample pictures the page offers."""
        return {"samples": list(pictures)}

    @app.get(
        "/api/samples/{name}",
        responses={
            200: {"description": "the picture", "content": {"image/png": {}}},
            404: _error_response("no such sample"),
        },
        response_class=Response,
    )
    async def sample(name: str) -> Response:
        """One bundled sample picture, by its name in /api/samples (no other file can be asked for)."""
        if name not in pictures:
            return _error(404, f"no sample named {name!r}; see /api/samples")
        return Response(pictures[name], media_type="image/png")


FACES_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["image"],
                "properties": {"image": {"type": "string", "format": "binary"}},
            }
        }
    },
}


def _mask_body() -> dict[str, Any]:
    """The request body of /api/mask: the image and CompleteRequest's fields that place the hole."""
    props = CompleteRequest.model_json_schema()["properties"]
    form = {
        "type": "object",
        "required": ["image", "mask_type"],
        "properties": {
            "image": {"type": "string", "format": "binary", "description": "the photo or face"},
            **{name: props[name] for name in MASK_FIELDS},
        },
    }
    return {"required": True, "content": {"multipart/form-data": {"schema": form}}}


def _add_work(app: FastAPI, completer: Completer, gate: _Gate) -> None:
    """/api/complete and /api/faces, which run in the model worker."""
    default_iterations = completer.options.iterations
    max_upload, max_pixels = gate.limits.max_upload, gate.limits.max_pixels

    async def upload(req: Request) -> Upload:
        up = await read_upload(req, max_upload)
        check_pixels(up, max_pixels)  # from the headers, before a queue place is taken
        return up

    @app.post(
        "/api/complete",
        openapi_extra={"requestBody": _complete_body()},
        responses=COMPLETE_RESPONSES,
        response_class=Response,
    )
    async def complete(request: Request) -> Response:
        """Complete one image: PNG, or JSON with every candidate (README, "Web page and HTTP API")."""
        t0 = time.perf_counter()
        fmt = {"fmt": "png"}

        async def reader(req: Request) -> CompleteJob:
            job = parse_job(await upload(req), default_iterations)
            fmt["fmt"] = job.fmt
            return job

        out = await gate.run(request, lambda job, cancelled: run_job(completer, job, cancelled), reader)
        if isinstance(out, Response):
            return out
        if fmt["fmt"] == "png":
            best = out["candidates"][0]
            headers = {"X-Seed": str(best["seed"]), "X-Loss": str(best["loss"])}
            return Response(best["png"], media_type="image/png", headers=headers)
        out["seconds"] = round(time.perf_counter() - t0, 3)
        for c in out["candidates"]:
            for part in c.get("regions", [c]):
                part["png"] = base64.b64encode(part["png"]).decode("ascii")
        return JSONResponse(out)

    @app.post(
        "/api/mask",
        openapi_extra={"requestBody": _mask_body()},
        responses=MASK_RESPONSES,
        response_class=Response,
    )
    async def mask(request: Request) -> Response:
        """The hole a mask_type draws on this image, as /api/complete would draw it: to show it
        before completing."""

        async def reader(req: Request) -> tuple[bytes, CompleteRequest]:
            up = await upload(req)
            return up.image, parse_mask_job(up)

        out = await gate.run(request, lambda job, cancelled: hole_png(completer, *job), reader)
        return out if isinstance(out, Response) else Response(out, media_type="image/png")

    @app.post(
        "/api/faces",
        openapi_extra={"requestBody": FACES_BODY},
        responses=FACES_RESPONSES,
        response_class=Response,
    )
    async def faces(request: Request) -> Response:
        """The faces OpenCV finds in an image: {"width", "height", "faces": [{"x", "y", "w", "h"}]},
        largest first. Any of them can be sent back as `box` to /api/complete."""

        async def reader(req: Request) -> Upload:
            up = await upload(req)
            unknown = set(up.fields) | ({"mask"} if up.mask is not None else set())
            if unknown:
                raise ApiError(400, f"unknown field {sorted(unknown)[0]!r} (expected image)")
            return up

        out = await gate.run(request, lambda up, cancelled: face_boxes(up.image), reader)
        return out if isinstance(out, Response) else JSONResponse(out)


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port; ServeError (one line naming the address) if it cannot be
    had, before anything says the server is serving."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise ServeError(f"host {host}: cannot resolve it ({e.strerror or e})") from e
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        sock.bind(address)
        sock.listen(2048)
    except OSError as e:
        sock.close()
        why = "already in use" if e.errno == errno.EADDRINUSE else (e.strerror or str(e))
        raise ServeError(f"port {port}: cannot listen on {host}:{port} ({why})") from e
    sock.set_inheritable(True)
    return sock


def run_server(app: FastAPI, sock: socket.socket) -> None:
    """Serve app on a bound socket (bind) until Ctrl-C."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=5))
    server.run(sockets=[sock])
