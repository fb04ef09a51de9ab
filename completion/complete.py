"""The Completer: one call for every input (aligned crops, photos, given boxes) that finds the
faces, frames each at the model's size, runs the latent search (search.py) on all of them in one
batch, and pastes G(z*) back into the hole at full resolution (Yeh et al. 2017)."""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field, replace
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from . import packed
from .bundle import Model
from .device import resolve_precision
from .errors import ImageError, MaskError
from .faces import detect_faces, framing_from_box
from .grid import to_pixels, to_signed
from .masks import MaskType
from .models import search_generator
from .options import CompletionOptions
from .photo import (
    NO_FACE,
    Box,
    Framing,
    assign_holes,
    draw_mask_type,
    inpaint_classic,
    is_face_crop,
    paste_back,
    warp_to_model,
)
from .search import Optimised, Search, StepCallback, ZAdam

__all__ = ["Completer", "Completion", "CompletionOptions", "FaceResult", "FaceSpec", "MaskType", "ZAdam"]

log = logging.getLogger(__name__)

# What the completer is told is missing: an HxW bool mask (True = known), or a mask type it draws
# in each face's frame.
Known = np.ndarray | MaskType


@dataclass(frozen=True)
class FaceSpec:
    """Which faces of an image the model completes: by default every face with a hole (an image at
    a model size is its own crop); `aligned`: the image is an aligned crop (no detection); `box`:
    one face given by hand; `face`: only the N-th face found (1 = the largest)."""

    aligned: bool = False
    box: Box | None = None
    face: int | None = None


class FoundFace(NamedTuple):
    """A model crop an image offers: where it lies, the face's box (None: aligned) and its score."""

    framing: Framing
    box: Box | None
    score: float | None


@dataclass
class FaceResult:
    """One face the model completed in an image: where it is and what the model made of it."""

    framing: Framing  # where the model's crop lies in the input
    box: Box | None  # the detected (or given) face box; None for an aligned crop
    crop: np.ndarray  # the model-size view of the input, SxSx3 uint8
    known: np.ndarray  # SxS bool, the model-size known mask
    generated: np.ndarray  # G(z*) at model size, uint8
    loss: float
    steps: int
    hole: int  # hole pixels of the input given to this face
    score: float | None = None  # the detector's confidence; None when not detected


@dataclass
class Completion:
    """One completed image and, when it had a hole, what was done: every face completed, with
    its framing, model-size view, G(z*), loss and steps. framing/crop/known/generated are the
    first face's (the largest), loss is the sum over the faces and steps their maximum."""

    image: np.ndarray  # completed, the input's size, uint8; bit-identical to the input outside the hole
    loss: float
    steps: int = 0  # Adam steps taken on z
    framing: Framing | None = None  # where the model's crop lies in the input
    crop: np.ndarray | None = None  # the model-size view of the input, SxSx3 uint8
    known: np.ndarray | None = None  # SxS bool, the model-size known mask
    generated: np.ndarray | None = None  # G(z*) at model size, uint8
    outside: int = 0  # hole pixels outside every face's crop, filled by OpenCV inpainting
    seed: int = 0  # the seed that reproduces this completion (CompletionOptions.seed, samples=1)
    # With CompletionOptions.samples > 1: every candidate, lowest loss first (this one is the first).
    candidates: list[Completion] = field(default_factory=list)
    faces: list[FaceResult] = field(default_factory=list)
    hole_known: np.ndarray | None = None  # the input's known mask (HxW bool; generated masks drawn)


def _resolve(options: CompletionOptions, model: Model) -> CompletionOptions:
    """The options as the search runs them, one rule for a new Completer and for with_options:
    init 'auto' -> the encoder when the model has one, else random ('encoder' without one is
    refused); precision 'auto' or 'bf16' -> device.resolve_precision on the model's device, which
    refuses bf16 where it is only emulated ('fp32' is taken as is)."""
    if options.init == "auto":
        options = replace(options, init="encoder" if model.encoder is not None else "random")
    elif options.init == "encoder" and model.encoder is None:
        raise ValueError("init='encoder' needs a model bundle with an encoder (see train-encoder)")
    if options.precision != "fp32":
        options = replace(options, precision=resolve_precision(options.precision, model.device))
    return options


class Completer:
    """Fill holes in faces with a trained model: `Completer(model).complete(image, known)`."""

    def __init__(self, model: Model, options: CompletionOptions | None = None) -> None:
        self.model = model
        self.options = _resolve(options or CompletionOptions(), model)
        # The search runs G folded and reshaped for speed, on the CPU with oneDNN's weights packed
        # once: the same function (models.search_generator, packed.py).
        self.generator = packed.prepare(search_generator(model.generator), model.device)
        # The generator the steps run, per precision (Search makes the bf16 one): made on first
        # use and shared by with_options' copies (a dict, so a copy's first search fills it for all).
        self._steps: dict[str, nn.Module] = {}

    def with_options(self, **changes: object) -> Completer:
        """A Completer on the same model with some options changed, sharing the prepared generator
        (a server answers each request with its own seed, samples and iterations)."""
        other = copy.copy(self)
        other.options = _resolve(replace(self.options, **changes), self.model)
        return other

    @property
    def size(self) -> int:
        return self.model.config.image_size

    @property
    def search(self) -> Search:
        """The latent search with this Completer's options and prepared generator (search.py)."""
        m, precision = self.model, self.options.precision
        search = Search(
            self.options,
            self.generator,
            m.discriminator,
            m.encoder,
            m.config.nz,
            m.device,
            self._steps.get(precision),
        )
        self._steps.setdefault(precision, search.step_generator)
        return search

    def optimise(
        self,
        y: torch.Tensor,
        m: torch.Tensor,
        callback: StepCallback | None = None,
        every: int = 0,
        seeds: list[int] | None = None,
    ) -> Optimised:
        """The search on model-size tensors: see search.Search.optimise."""
        return self.search.optimise(y, m, callback, every, seeds)

    # -- images of any size -------------------------------------------------------------------

    def frame_faces(
        self, image: np.ndarray, spec: FaceSpec = FaceSpec(), name: str = "image"
    ) -> list[FoundFace]:
        """The model crops an image offers, largest first.

        An aligned image (or, with neither box nor face given, a face crop: square at a model size,
        photo.is_face_crop) has one: its canonical crop. `spec.box` gives one face by hand;
        otherwise YuNet finds every face and `spec.face` (1-based, largest first) keeps only that
        one. Raises ImageError when none is found."""
        h, w = image.shape[:2]
        s, crop, box = self.size, self.model.config.crop, spec.box
        if spec.aligned or (box is None and spec.face is None and is_face_crop(w, h, s)):
            return [FoundFace(Framing.aligned(w, h, s, crop), None, None)]
        if box is not None:
            if box.x >= w or box.y >= h or box.x + box.w <= 0 or box.y + box.h <= 0:
                raise MaskError(f"{name}: box {box.x},{box.y},{box.w},{box.h} lies outside the {w}x{h} image")
            return [FoundFace(framing_from_box(image, box, s), box, None)]
        found = detect_faces(image)
        if not found:
            raise ImageError(NO_FACE.format(name=name))
        if spec.face is not None:
            if not 1 <= spec.face <= len(found):
                raise MaskError(
                    f"{name}: face {spec.face} asked for, but {len(found)} found "
                    f"({_boxes([f.box for f in found])}; numbered from 1, largest first)"
                )
            found = [found[spec.face - 1]]
        return [FoundFace(f.framing(s), f.box, f.score) for f in found]

    def draw_mask(
        self, image: np.ndarray, mask_type: MaskType, spec: FaceSpec = FaceSpec(), name: str = "image"
    ) -> tuple[np.ndarray, list[FoundFace]]:
        """The known mask (HxW bool) a mask type gives this image, drawn in the frame of every face
        found (frame_faces) with options.seed, and those faces. MaskError when it draws no hole
        inside the image."""
        h, w = image.shape[:2]
        faces = self.frame_faces(image, spec, name)
        known = draw_mask_type(mask_type.spec, [f.framing for f in faces], h, w, seed=self.options.seed)
        if known.all():  # not "outside every face": nothing was drawn inside the image at all
            big = [f.box for f in faces if f.box is not None and (f.box.w > w or f.box.h > h)]
            why = f" (the box {_boxes(big)} is larger than the image)" if big else ""
            raise MaskError(f"{name}: mask type {mask_type} draws no hole inside the {w}x{h} image{why}")
        return known, faces

    def _frame(self, image: np.ndarray, known: Known, spec: FaceSpec, name: str) -> _Framed | Completion:
        """One input checked and framed: every face that gets part of the hole, at model size; or,
        for a mask without a hole, its finished Completion (the input itself)."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ImageError(f"{name}: expected an HxWx3 uint8 RGB image")
        h, w = image.shape[:2]
        drawn = isinstance(known, MaskType)  # drawn on each face found
        if not drawn:
            known = np.asarray(known, bool)
            if known.shape != (h, w):
                raise MaskError(f"{name}: mask is {known.shape[1]}x{known.shape[0]} but the image is {w}x{h}")
            if known.all():
                log.warning("%s: the mask has no hole: the output equals the input", name)
                return Completion(image.copy(), 0.0, seed=self.options.seed, hole_known=known)
        if drawn:
            known, faces = self.draw_mask(image, known, spec, name)
        else:
            faces = self.frame_faces(image, spec, name)
        hole = ~known
        shares, nowhere = assign_holes(hole, [f.framing for f in faces])
        used = [(f, share) for f, share in zip(faces, shares, strict=True) if share.any()]
        if not used:
            raise MaskError(
                f"{name}: the hole lies outside every face found ({len(faces)}: "
                f"{_boxes([f.box for f in faces])}); draw it over a face or give the face "
                "with --box x,y,w,h"
            )
        area = sum(f.framing.area for f, _ in used)
        if not drawn and int(hole.sum()) > area:
            raise MaskError(
                f"{name}: the hole ({int(hole.sum())} px) is bigger than the face crops "
                f"({round(area)} px); draw a smaller hole, or give the whole face with --box"
            )
        views = []
        for f, share in used:
            view, kn = warp_to_model(image, known, f.framing)
            if not kn.any():
                log.warning(
                    "%s: the hole covers the whole face crop: completed from the model's prior alone", name
                )
            views.append(_FaceView(f, view, kn, share))
        return _Framed(image, known, nowhere, name, views)

    def _search_faces(
        self, faces: list[_FaceView], callback: StepCallback | None, every: int, seeds: list[int]
    ) -> tuple[Optimised, np.ndarray]:
        """One search over every face view (K candidates each, rows face * K + candidate): the
        result and G(z*) as HxWx3 float pixels in [0, 255]."""
        k = self.options.samples
        m = torch.stack([torch.from_numpy(f.known.astype(np.float32))[None] for f in faces])
        y = torch.stack([torch.from_numpy(f.view.astype(np.float32)).permute(2, 0, 1) for f in faces])
        y = to_signed(y) * m  # the hole's old content never reaches the optimisation
        opt = self.optimise(y.repeat_interleave(k, 0), m.repeat_interleave(k, 0), callback, every, seeds)
        gens = to_pixels(opt.generated)
        return opt, gens.permute(0, 2, 3, 1).numpy()

    def _assemble(
        self, item: _Framed, rows: list[int], opt: Optimised, gens: np.ndarray, c: int
    ) -> Completion:
        """Candidate c of one input: each of its faces' G(z*) pasted into that face's share of the
        hole, the rest of the hole (no face covers it) inpainted by OpenCV."""
        k = self.options.samples
        out, outside, done = item.image, int(item.nowhere.sum()), []
        for j, f in zip(rows, item.faces, strict=True):
            gen_f = gens[j * k + c].astype(np.float32)
            out, missed = paste_back(out, f.share, f.found.framing, gen_f, self.options.blend)
            outside += missed
            generated = np.clip(np.rint(gen_f), 0, 255).astype(np.uint8)
            loss, steps = float(opt.loss[j * k + c]), int(opt.steps[j * k + c])
            n_hole = int(f.share.sum())
            done.append(
                FaceResult(
                    f.found.framing,
                    f.found.box,
                    f.view,
                    f.known,
                    generated,
                    loss,
                    steps,
                    n_hole,
                    f.found.score,
                )
            )
        out = inpaint_classic(out, item.nowhere)
        first = done[0]
        return Completion(
            out,
            sum(d.loss for d in done),
            max(d.steps for d in done),
            first.framing,
            first.crop,
            first.known,
            first.generated,
            outside,
            self.options.seed + c,
            faces=done,
            hole_known=item.known,
        )

    def complete_many(
        self,
        items: list[tuple[np.ndarray, Known | str]],
        callback: StepCallback | None = None,
        every: int = 0,
        aligned: bool = False,
        box: Box | None = None,
        names: list[str] | None = None,
        face: int | None = None,
        *,
        spec: FaceSpec | None = None,
        **options: object,
    ) -> list[Completion]:
        """Complete (image HxWx3 uint8, known) pairs together in one tensor batch.

        `known` is an HxW bool mask (True = known) or a mask type (MaskType, or its text: "eyes"),
        drawn in each face's model frame and warped into the image. Which faces: `spec` (FaceSpec),
        or its fields aligned/box/face (an image at the model's size is its own crop). Each hole
        region goes to the face whose crop covers most of it; every such face of every image is
        optimised in the same batch and pasted back into its hole at full resolution; hole regions
        no crop covers are filled by OpenCV's Telea inpainting. MaskError when the hole lies outside
        every face. Keyword `options` override CompletionOptions for this call (iterations=25, ...).

        With options.samples = K > 1 each image is completed K times (seeds options.seed + k), in
        the same tensor batch; the result is the lowest-loss candidate, all K in its .candidates."""
        if options:
            return self.with_options(**options).complete_many(
                items, callback, every, names=names, spec=spec or FaceSpec(aligned, box, face)
            )
        spec = spec or FaceSpec(aligned, box, face)
        names = names or [f"image {i + 1}" for i in range(len(items))]
        prepared = [
            self._frame(image, MaskType(known) if isinstance(known, str) else known, spec, name)
            for (image, known), name in zip(items, names, strict=True)
        ]
        framed = [p for p in prepared if isinstance(p, _Framed)]
        views = [f for p in framed for f in p.faces]
        if not views:
            return prepared  # type: ignore[return-value] - every one a Completion
        k, seed = self.options.samples, self.options.seed
        # Row j * k + c is candidate c of face view j; a face's seed is its image's.
        opt, gens = self._search_faces(views, callback, every, [seed + c for _ in views for c in range(k)])
        results: list[Completion] = []
        start = 0
        for p in prepared:
            if isinstance(p, Completion):
                results.append(p)
                continue
            rows = list(range(start, start + len(p.faces)))
            start += len(p.faces)
            candidates = [self._assemble(p, rows, opt, gens, c) for c in range(k)]
            _log_faces(p.name, candidates[0])
            candidates.sort(key=lambda c: c.loss)  # stable: equal losses keep the seed order
            results.append(replace(candidates[0], candidates=candidates) if k > 1 else candidates[0])
        return results

    def complete(
        self,
        image: np.ndarray,
        known: Known | str,
        callback: StepCallback | None = None,
        every: int = 0,
        aligned: bool = False,
        box: Box | None = None,
        face: int | None = None,
        name: str = "image",
        *,
        spec: FaceSpec | None = None,
        **options: object,
    ) -> Completion:
        """Complete one image (HxWx3 uint8): `known` is an HxW bool mask, True where known, or a
        mask type drawn on each face; keyword options override CompletionOptions for this call:
        `completer.complete(image, "eyes", iterations=25)`. See complete_many."""
        spec = spec or FaceSpec(aligned, box, face)
        return self.complete_many([(image, known)], callback, every, names=[name], spec=spec, **options)[0]


@dataclass
class _FaceView:
    """One face of an input at model size, with the part of the input's hole it fills."""

    found: FoundFace
    view: np.ndarray  # SxSx3 uint8
    known: np.ndarray  # SxS bool
    share: np.ndarray  # HxW bool: the hole pixels this face is pasted into


@dataclass
class _Framed:
    """One input ready for the search: its faces at model size and the hole no face covers."""

    image: np.ndarray
    known: np.ndarray  # HxW bool (a mask type already drawn)
    nowhere: np.ndarray  # HxW bool
    name: str
    faces: list[_FaceView]


def _boxes(boxes: list[Box | None]) -> str:
    return ", ".join("aligned crop" if b is None else f"{b.x},{b.y},{b.w},{b.h}" for b in boxes)


def _log_faces(name: str, res: Completion) -> None:
    """One line: which faces the model completed, and what was left to classical inpainting."""
    if len(res.faces) == 1 and res.faces[0].box is None and not res.outside:
        return  # an aligned crop: nothing to say
    parts = [
        f"{'aligned crop' if f.box is None else f'box {f.box.x},{f.box.y},{f.box.w},{f.box.h}'} "
        f"({f.hole} hole px)"
        for f in res.faces
    ]
    log.info("%s: completed %d face(s): %s", name, len(res.faces), "; ".join(parts))
    if res.outside:
        log.warning(
            "%s: %d hole pixels lie outside every face crop; filled them with OpenCV inpainting",
            name,
            res.outside,
        )
