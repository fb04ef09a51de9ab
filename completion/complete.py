"""Semantic inpainting by latent optimisation (Yeh et al. 2017; Amos 2016).

For images y in [-1, 1] and masks M (1 = known), find z in [-1, 1]^nz minimising

    ||W * (G(z) - y)||_1  +  lam * perceptual(D(G(z)))

with Adam, clipping z after every step, then keep the known pixels of y and take the hole from
G(z*), Poisson-blended. Many images (and restarts) are optimised together in one tensor batch:
G and D are in eval mode, so every image's loss depends only on its own z."""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import torch
import torch.nn.functional as F

from .bundle import Model
from .device import resolve_precision
from .errors import ImageError, MaskError
from .faces import detect_faces, framing_from_box
from .masks import yeh_weights
from .models import fold_batch_norm
from .options import CompletionOptions
from .photo import (
    NO_FACE,
    Box,
    Framing,
    assign_holes,
    face_mask,
    inpaint_classic,
    is_face_crop,
    paste_back,
    warp_to_model,
)

log = logging.getLogger(__name__)


@dataclass
class Optimised:
    """Result of optimising a batch at model resolution."""

    generated: torch.Tensor  # (N, 3, S, S) G(z*) in [-1, 1]
    z: torch.Tensor  # (N, nz)
    loss: torch.Tensor  # (N,) final objective of the kept restart
    steps: torch.Tensor  # (N,) Adam steps applied to the kept z (fewer after an early stop)


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


StepCallback = Callable[[int, torch.Tensor], None]


class ZAdam:
    """torch.optim.Adam for the one tensor z, with the arithmetic of torch's single-tensor (CPU)
    implementation operation for operation, so results are bit-identical (tests check this).

    Why not torch.optim.Adam: constructing any torch optimiser imports torch._dynamo, which
    costs 1-2 s, a third of a one-image `completion complete` on a 2-core CPU."""

    def __init__(self, z: torch.Tensor, lr: float, betas: tuple[float, float], eps: float = 1e-8) -> None:
        self.z, self.lr, self.eps = z, lr, eps
        self.beta1, self.beta2 = betas
        self.exp_avg = torch.zeros_like(z, memory_format=torch.preserve_format)
        self.exp_avg_sq = torch.zeros_like(z, memory_format=torch.preserve_format)
        self.steps = 0.0  # torch counts in a float32 tensor and uses its value as a Python float

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.z.grad = None

    @torch.no_grad()
    def step(self) -> None:
        grad = self.z.grad
        if grad is None:
            return
        self.steps += 1
        self.exp_avg.lerp_(grad, 1 - self.beta1)
        self.exp_avg_sq.mul_(self.beta2).addcmul_(grad, grad, value=1 - self.beta2)
        bias_correction1 = 1 - self.beta1**self.steps
        bias_correction2 = 1 - self.beta2**self.steps
        denom = (self.exp_avg_sq.sqrt() / bias_correction2**0.5).add_(self.eps)
        self.z.addcdiv_(self.exp_avg, denom, value=-(self.lr / bias_correction1))


def _resolve(options: CompletionOptions, model: Model) -> CompletionOptions:
    """The options as the search runs them, one rule for a new Completer and for with_options:
    init 'auto' -> the encoder when the model has one, else random ('encoder' without one is
    refused); precision 'auto' or 'bf16' -> device.resolve_precision on the model's device, which
    refuses bf16 where it is only emulated ('fp32', the default, is taken as is)."""
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
        # The search runs G with batch norm folded into its convolutions and channels-last
        # activations: the same function, 1.1-1.3x faster per step (benchmarks/step_cost.py).
        self.generator = fold_batch_norm(model.generator).to(memory_format=torch.channels_last)

    def with_options(self, **changes: object) -> Completer:
        """A Completer on the same model with some options changed, sharing the prepared generator
        (a server answers each request with its own seed, samples and iterations)."""
        other = copy.copy(self)
        other.options = _resolve(replace(self.options, **changes), self.model)
        return other

    @property
    def size(self) -> int:
        return self.model.config.image_size

    # -- optimisation at model resolution ---------------------------------------------------

    def weights(self, m: torch.Tensor) -> torch.Tensor:
        if self.options.weighting == "plain":
            return m
        return yeh_weights(m, self.options.window)

    def initial_z(self, y: torch.Tensor, m: torch.Tensor, seeds: list[int] | None = None) -> torch.Tensor:
        """Starting z for every (image, restart), (N * R, nz).

        Each image draws its restarts from its own generator seeded with its seed (options.seed
        unless `seeds` gives one per image), so its result does not depend on which other images
        share the batch, or where it sits in it."""
        r, nz = self.options.restarts, self.model.config.nz
        seeds = [self.options.seed] * y.shape[0] if seeds is None else list(seeds)
        draws = {}
        for s in set(seeds):
            gen = torch.Generator().manual_seed(s)
            restarts = torch.rand(r, nz, generator=gen) * 2 - 1
            # Drawn after the restarts, so that a seed's restarts are what they were before.
            shift = torch.randn(nz, generator=gen) * self.options.spread if s != 0 else torch.zeros(nz)
            draws[s] = (restarts, shift)
        z = torch.cat([draws[s][0] for s in seeds])
        if self.options.init == "encoder":
            with torch.no_grad():
                ze = self.model.encoder(y, m).cpu()
            # Restart 0 starts at the encoder's estimate (moved by the seed's shift), the others
            # in a small ball around it.
            jitter = (z * 0.25).view(-1, r, nz)
            jitter[:, 0] = 0
            shift = torch.stack([draws[s][1] for s in seeds]).repeat_interleave(r, 0)
            z = (ze.repeat_interleave(r, 0) + jitter.view(-1, nz) + shift).clamp(-1, 1)
        return z

    def objective(
        self, z: torch.Tensor, y: torch.Tensor, w: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-sample loss and G(z)."""
        # bf16 runs the networks at about twice the speed on CPUs with bf16 units; the loss and z
        # stay float32.
        with torch.autocast(z.device.type, dtype=torch.bfloat16, enabled=self.options.precision == "bf16"):
            g = self.generator(z)
            logits = self.model.discriminator(g) if self.options.lam > 0 else None
        g = g.float()
        loss = (w * (g - y).abs()).flatten(1).sum(1)
        lam = self.options.lam
        if logits is not None:
            logits = logits.float()
            # log(1 - sigmoid(l)) = -softplus(l);  -log sigmoid(l) = softplus(-l)
            perceptual = -F.softplus(logits) if self.options.perceptual == "log1m" else F.softplus(-logits)
            loss = loss + lam * perceptual
        return loss, g

    def optimise(
        self,
        y: torch.Tensor,
        m: torch.Tensor,
        callback: StepCallback | None = None,
        every: int = 0,
        seeds: list[int] | None = None,
    ) -> Optimised:
        """y: (N, 3, S, S) in [-1, 1]; m: (N, 1, S, S), 1 = known; seeds: one per image (default:
        options.seed for all). Returns the best restart each."""
        o = self.options
        device = self.model.device
        n, r = y.shape[0], o.restarts
        y, m = y.to(device), m.to(device)
        z = self.initial_z(y, m, seeds).to(device)
        yr = y.repeat_interleave(r, 0)
        w = self.weights(m).repeat_interleave(r, 0)
        z.requires_grad_(True)
        # On the CPU the same arithmetic without torch.optim (see ZAdam); elsewhere torch's own.
        opt = (
            ZAdam(z, o.lr, (o.beta1, o.beta2))
            if z.device.type == "cpu"
            else torch.optim.Adam([z], lr=o.lr, betas=(o.beta1, o.beta2))
        )
        best_loss = torch.full((n * r,), float("inf"), device=device)
        best_z = z.detach().clone()
        # Early stop freezes each (image, restart) on its own once it stalls, so that an image's
        # result does not depend on the others in its batch; the loop ends when all are frozen.
        # A frozen z keeps its loss, so it stays stalled: `frozen` needs no memory of its own.
        early = o.early_stop > 0
        stalled = torch.zeros(n * r, dtype=torch.long, device=device)
        frozen = torch.zeros(n * r, dtype=torch.bool, device=device)
        steps = torch.zeros(n * r, dtype=torch.long, device=device)
        for it in range(o.iterations + 1):
            loss, g = self.objective(z, yr, w)
            with torch.no_grad():
                if early:
                    stalled = torch.where(loss < best_loss * (1 - o.early_stop), 0, stalled + 1)
                    frozen = stalled >= o.patience
                better = loss < best_loss
                best_loss = torch.where(better, loss, best_loss)
                best_z[better] = z[better]
            if callback is not None and every and it % every == 0:
                callback(it, g.detach())
            if it == o.iterations or (early and bool(frozen.all())):
                break  # the last pass only scores the final z
            opt.zero_grad(set_to_none=True)
            loss.sum().backward()
            before = z.detach()[frozen].clone() if early else None
            opt.step()
            steps += ~frozen
            with torch.no_grad():
                if before is not None:
                    z[frozen] = before
                z.clamp_(-1, 1)
        # Keep, for each image, the restart with the lowest loss.
        best_loss = best_loss.view(n, r)
        pick = best_loss.argmin(1)
        rows = torch.arange(n, device=device) * r + pick
        z_star = best_z[rows]
        with torch.no_grad():
            generated = self.generator(z_star).contiguous()
        loss = best_loss.gather(1, pick[:, None]).squeeze(1)
        return Optimised(generated, z_star.cpu(), loss.cpu(), steps[rows].cpu())

    # -- images of any size -------------------------------------------------------------------

    def find_faces(
        self,
        image: np.ndarray,
        aligned: bool = False,
        box: Box | None = None,
        face: int | None = None,
        name: str = "image",
    ) -> list[tuple[Framing, Box | None, float | None]]:
        """The model crops an image offers, as (framing, box, detector score), largest first.

        An aligned image (or, with neither box nor face given, a face crop: square at a model size,
        photo.is_face_crop) has one:
        its canonical crop. `box` gives one face by hand; otherwise YuNet finds every face and
        `face` (1-based, largest first) keeps only that one. Raises ImageError when none is found."""
        h, w = image.shape[:2]
        s, crop = self.size, self.model.config.crop
        if aligned or (box is None and face is None and is_face_crop(w, h, s)):
            return [(Framing.aligned(w, h, s, crop), None, None)]
        if box is not None:
            if box.x >= w or box.y >= h or box.x + box.w <= 0 or box.y + box.h <= 0:
                raise MaskError(f"{name}: box {box.x},{box.y},{box.w},{box.h} lies outside the {w}x{h} image")
            return [(framing_from_box(image, box, s), box, None)]
        found = detect_faces(image)
        if not found:
            raise ImageError(NO_FACE.format(name=name))
        if face is not None:
            if not 1 <= face <= len(found):
                raise MaskError(
                    f"{name}: face {face} asked for, but {len(found)} found "
                    f"({_boxes([f.box for f in found])}; numbered from 1, largest first)"
                )
            found = [found[face - 1]]
        return [(f.framing(s), f.box, f.score) for f in found]

    def complete_many(
        self,
        items: list[tuple[np.ndarray, np.ndarray | str]],
        callback: StepCallback | None = None,
        every: int = 0,
        aligned: bool = False,
        box: Box | None = None,
        names: list[str] | None = None,
        face: int | None = None,
    ) -> list[Completion]:
        """Complete (image HxWx3 uint8, known) pairs together in one tensor batch.

        `known` is an HxW bool mask (True = known) or a mask type (masks.make_mask spec), which is
        drawn in each face's model frame and warped into the image. The faces: see find_faces (an
        image at the model's size is its own crop). Each hole region goes to the face whose crop
        covers most of it; every such face of every image is optimised in the same batch and
        pasted back into its hole at full resolution; hole regions no crop covers are filled by
        OpenCV's Telea inpainting. MaskError when the hole lies outside every face.

        With options.samples = K > 1 each image is completed K times (seeds options.seed + k), in
        the same tensor batch; the result is the lowest-loss candidate, all K in its .candidates."""
        names = names or [f"image {i + 1}" for i in range(len(items))]
        results: list[Completion | None] = [None] * len(items)
        # (item index, framing, box, score, view, model known, this face's share of the hole)
        framed: list[tuple[int, Framing, Box | None, float | None, np.ndarray, np.ndarray, np.ndarray]] = []
        extra: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # item -> (known, hole no face covers)
        for i, ((image, known), name) in enumerate(zip(items, names, strict=True)):
            if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
                raise ImageError(f"{name}: expected an HxWx3 uint8 RGB image")
            h, w = image.shape[:2]
            generated_mask = isinstance(known, str)
            if not generated_mask:
                known = np.asarray(known, bool)
                if known.shape != (h, w):
                    raise MaskError(
                        f"{name}: mask is {known.shape[1]}x{known.shape[0]} but the image is {w}x{h}"
                    )
                if known.all():
                    log.warning("%s: the mask has no hole: the output equals the input", name)
                    results[i] = Completion(image.copy(), 0.0, seed=self.options.seed, hole_known=known)
                    continue
            faces = self.find_faces(image, aligned, box, face, name)
            if generated_mask:
                known = face_mask(known, [f for f, _, _ in faces], h, w, seed=self.options.seed)
            hole = ~known
            shares, nowhere = assign_holes(hole, [f for f, _, _ in faces])
            used = [(fc, share) for fc, share in zip(faces, shares, strict=True) if share.any()]
            if not used:
                raise MaskError(
                    f"{name}: the hole lies outside every face found ({len(faces)}: "
                    f"{_boxes([b for _, b, _ in faces])}); draw it over a face or give the face "
                    "with --box x,y,w,h"
                )
            area = sum(f.area for (f, _, _), _ in used)
            if not generated_mask and int(hole.sum()) > area:
                raise MaskError(
                    f"{name}: the hole ({int(hole.sum())} px) is bigger than the face crops "
                    f"({round(area)} px); draw a smaller hole, or give the whole face with --box"
                )
            for (framing, fbox, score), share in used:
                view, kn = warp_to_model(image, known, framing)
                if not kn.any():
                    log.warning(
                        "%s: the hole covers the whole face crop: completed from the model's prior alone",
                        name,
                    )
                framed.append((i, framing, fbox, score, view, kn, share))
            extra[i] = (known, nowhere)
        if framed:
            k, seed = self.options.samples, self.options.seed
            m = torch.stack([torch.from_numpy(f[5].astype(np.float32))[None] for f in framed])
            y = torch.stack([torch.from_numpy(f[4].astype(np.float32)).permute(2, 0, 1) for f in framed])
            y = (y / 127.5 - 1) * m  # the hole's old content never reaches the optimisation
            # Row j * k + c is candidate c of framed face j; a face's seed is its image's.
            seeds = [seed + c for _ in framed for c in range(k)]
            opt = self.optimise(y.repeat_interleave(k, 0), m.repeat_interleave(k, 0), callback, every, seeds)
            gens = (opt.generated.detach().float().cpu().clamp(-1, 1) + 1) * 127.5
            gens = gens.permute(0, 2, 3, 1).numpy()
            for i in extra:
                image = items[i][0]
                known, nowhere = extra[i]
                rows = [j for j, f in enumerate(framed) if f[0] == i]
                candidates = []
                for c in range(k):
                    out, outside, done = image, int(nowhere.sum()), []
                    for j in rows:
                        _, framing, fbox, score, view, kn, share = framed[j]
                        gen_f = gens[j * k + c].astype(np.float32)
                        out, missed = paste_back(out, share, framing, gen_f, self.options.blend, names[i])
                        outside += missed
                        generated = np.clip(np.rint(gen_f), 0, 255).astype(np.uint8)
                        loss, steps = float(opt.loss[j * k + c]), int(opt.steps[j * k + c])
                        n_hole = int(share.sum())
                        res = FaceResult(framing, fbox, view, kn, generated, loss, steps, n_hole, score)
                        done.append(res)
                    out = inpaint_classic(out, nowhere)
                    first = done[0]
                    candidates.append(
                        Completion(
                            out,
                            sum(d.loss for d in done),
                            max(d.steps for d in done),
                            first.framing,
                            first.crop,
                            first.known,
                            first.generated,
                            outside,
                            seed + c,
                            faces=done,
                            hole_known=known,
                        )
                    )
                _log_faces(names[i], candidates[0])
                candidates.sort(key=lambda c: c.loss)  # stable: equal losses keep the seed order
                results[i] = replace(candidates[0], candidates=candidates) if k > 1 else candidates[0]
        return results  # type: ignore[return-value]

    def complete(
        self,
        image: np.ndarray,
        known: np.ndarray | str,
        callback: StepCallback | None = None,
        every: int = 0,
        aligned: bool = False,
        box: Box | None = None,
        face: int | None = None,
        name: str = "image",
    ) -> Completion:
        """Complete one image (HxWx3 uint8): `known` is an HxW bool mask, True where known, or a
        mask type drawn on each face. See complete_many."""
        return self.complete_many([(image, known)], callback, every, aligned, box, [name], face)[0]


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


def complete_photo_full(
    completer: Completer,
    image: np.ndarray,
    known: np.ndarray | str,
    box: Box | None = None,
    aligned: bool = False,
    name: str = "image",
    callback: StepCallback | None = None,
    every: int = 0,
    face: int | None = None,
) -> Completion:
    """Completer.complete with the photo-first argument order (kept for existing callers)."""
    return completer.complete(image, known, callback, every, aligned, box, face, name)


def complete_photo(
    completer: Completer,
    image: np.ndarray,
    known: np.ndarray | str,
    box: Box | None = None,
    aligned: bool = False,
    name: str = "image",
) -> np.ndarray:
    """The completed photo only (see Completer.complete)."""
    return completer.complete(image, known, aligned=aligned, box=box, name=name).image
