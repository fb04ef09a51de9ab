"""The `completion` command line: a thin layer that parses options, calls the Python API, and
turns library exceptions into one-line errors (exit 1) and bad options into usage errors (exit 2)."""

from __future__ import annotations

import functools
import logging
import math
import sys
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING

import click
import torch

from . import __version__
from .bundle import DEFAULT_NAME, SHIPPED, load_model, model_path
from .config import SEED_MAX, ModelConfig, parse_crop
from .device import CpuMeter
from .errors import CompletionError
from .imageio import QUALITY_FORMATS, check_writable, output_format, same_file
from .options import DEVICES, CompletionOptions, EncoderOptions, TrainOptions, public_fields
from .text import plural

if TYPE_CHECKING:  # masks imports OpenCV: the CLI loads it only for the commands that need it
    from .masks import MaskType

log = logging.getLogger("completion")


def _crop_option(ctx: click.Context, param: click.Parameter, value: str) -> str:
    try:
        parse_crop(value)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None
    return value


class FiniteRange(click.FloatRange):
    """A FloatRange that also refuses nan and inf (which compare as inside any range)."""

    name = "finite float range"

    def convert(self, value, param, ctx):  # noqa: ANN001, ANN201
        rv = super().convert(value, param, ctx)
        if not math.isfinite(rv):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return rv


SEED = click.IntRange(0, SEED_MAX)


def click_options(cls: type, group: str | None = None) -> list:
    """click options for the user-settable fields of an options dataclass (options.option), in
    field order: name, type, range or choices, default and help all come from the field, so an
    option cannot drift from what it sets. `group`: only that group's fields (options.Spec.group)."""
    from .options import spec_of

    opts = []
    for f in public_fields(cls, group):
        s = spec_of(f)
        name = "--" + f.name.replace("_", "-")
        if isinstance(f.default, bool):
            opts.append(
                click.option(f"{name}/--no-{name[2:]}", default=f.default, show_default=True, help=s.help)
            )
            continue
        if s.choices:
            ptype = click.Choice(s.choices)
        else:
            # Floats must also be finite: nan and inf compare as inside any range.
            ranged = FiniteRange if isinstance(f.default, float) else click.IntRange
            ptype = ranged(s.low, s.high, min_open=s.low_open, max_open=s.high_open)
        shown = f.default is not None
        opts.append(click.option(name, type=ptype, default=f.default, show_default=shown, help=s.help))
    return opts


def _apply(fn, opts: list):  # noqa: ANN001, ANN202 - decorators, first in the list outermost
    for o in reversed(opts):
        fn = o(fn)
    return fn


def handle_errors(fn):  # noqa: ANN001, ANN201 - decorator
    """Library errors -> one line on stderr and exit 1; Ctrl-C -> short message, exit 130."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        debug = click.get_current_context().find_root().params.get("debug", False)
        try:
            return fn(*args, **kwargs)
        except CompletionError as e:
            if debug:
                raise
            click.echo("error: " + " ".join(str(e).split()), err=True)  # always one line
            sys.exit(1)
        except KeyboardInterrupt:
            if debug:
                raise
            click.echo("interrupted", err=True)
            sys.exit(130)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="completion")
@click.option("--debug", is_flag=True, help="Show tracebacks instead of one-line errors.")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors.")
def main(debug: bool, quiet: bool) -> None:
    """Semantic face inpainting with a DCGAN: train a face model, then fill holes in faces."""
    global _METER
    logging.basicConfig(
        level=logging.WARNING if quiet else logging.INFO, format="%(message)s", stream=sys.stderr
    )
    # Measures what other processes use while the command loads its model (build_completer).
    _METER = CpuMeter()


_METER: CpuMeter | None = None


MODEL_HELP = (
    f"Model bundle (.pt), or a shipped model by name ({', '.join(SHIPPED)}); default: {DEFAULT_NAME}."
)


def _progress(no_progress: bool) -> bool:
    """Progress bars unless --no-progress or the group's -q/--quiet."""
    return not no_progress and not click.get_current_context().find_root().params.get("quiet", False)


def train_options(fn):  # noqa: ANN001, ANN201 - decorator
    """The TrainOptions fields users set (click_options), after the data, the run and the model's shape."""
    opts = [
        click.option(
            "--data", type=click.Path(path_type=Path), help="Folder of images (searched recursively)."
        ),
        click.option("--out", "out", required=True, type=click.Path(path_type=Path), help="Run folder."),
        click.option("--image-size", type=click.Choice(["32", "64", "128"]), default="64", show_default=True),
        click.option(
            "--ngf", type=click.IntRange(min=1), default=64, show_default=True, help="Generator width."
        ),
        click.option(
            "--ndf", type=click.IntRange(min=1), default=64, show_default=True, help="Discriminator width."
        ),
        click.option(
            "--crop",
            default="center:0.72",
            show_default=True,
            callback=_crop_option,
            help="'center:F' keeps the centred square of side F x width; 'none' only resizes.",
        ),
        *click_options(TrainOptions),
        click.option(
            "--grow-from",
            type=click.Path(path_type=Path, dir_okay=False),
            default=None,
            help="Start from a model of half the size (a bundle, or a shipped model's name, e.g. "
            "celeba64): its layers are reused and one new block at the top is faded in (image size "
            "and widths follow from it).",
        ),
        click.option("--resume", is_flag=True, help="Continue from RUN/checkpoint.pt exactly."),
        click.option("--no-progress", is_flag=True),
    ]
    return _apply(fn, opts)


@main.command()
@train_options
@handle_errors
def train(
    data: Path | None,
    out: Path,
    image_size: str,
    ngf: int,
    ndf: int,
    crop: str,
    grow_from: Path | None,
    resume: bool,
    no_progress: bool,
    **kw,
) -> None:  # noqa: ANN003
    """Train a DCGAN on a folder of face images (CelebA layout works as is)."""
    from .train import checkpoint_path
    from .train import train as run_train

    if not resume and data is None:
        raise click.UsageError("--data is required (unless --resume)")
    if resume and not checkpoint_path(out).exists() and data is None:
        raise click.UsageError(f"--resume: {checkpoint_path(out)} does not exist and no --data was given")
    if not resume and checkpoint_path(out).exists():
        raise click.UsageError(f"{out} already holds a checkpoint: pass --resume, or choose another --out")
    check_writable(out, folder=True)
    ctx = click.get_current_context()
    given = {k for k in ctx.params if ctx.get_parameter_source(k) == click.core.ParameterSource.COMMANDLINE}
    cfg = ModelConfig(image_size=int(image_size), ngf=ngf, ndf=ndf, crop=crop)
    if grow_from is not None:
        from .bundle import check_layout, read_file
        from .grow import grown_config

        grow_from = model_path(grow_from)
        small = read_file(grow_from, "model")
        check_layout(small, grow_from, "model file", ("config",), ())
        try:
            grown = grown_config(ModelConfig.from_dict(small["config"]))
        except (ValueError, TypeError) as e:
            raise click.BadParameter(f"{grow_from}: {e}", param_hint="--grow-from") from None
        keep = {k: getattr(cfg, k) for k in ("image_size", "ngf", "ndf", "crop") if k in given}
        cfg = ModelConfig(**{**grown.to_dict(), **keep})
    opts = TrainOptions(
        # Absolute, so that --resume finds the data from any working directory; "" on a resume
        # without --data: the checkpoint's folder.
        data=str(data.resolve()) if data is not None else "",
        out=str(out),
        progress=_progress(no_progress),
        grow_from=str(grow_from.resolve()) if grow_from is not None else "",
        **kw,
    )
    try:
        path = run_train(cfg, opts, resume=resume, given=given)
    except ValueError as e:
        raise click.UsageError(str(e)) from None
    log.info("done: %s (export it with `completion export %s --out MODEL.pt`)", path, path)


@main.command()
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Model bundle to write.")
@click.option("--overwrite", is_flag=True, help="Replace --out if it exists (by default it is refused).")
@handle_errors
def export(checkpoint: Path, out: Path, overwrite: bool) -> None:
    """Turn a training checkpoint (or run folder) into a shippable model bundle."""
    from .train import checkpoint_path
    from .train import export as run_export

    if checkpoint.is_dir():
        checkpoint = checkpoint_path(checkpoint)
    if same_file(out, checkpoint):
        raise click.UsageError(f"--out {out} would overwrite the checkpoint")
    if out.exists() and not overwrite:  # a shipped bundle is not replaced by a slip of the hand
        raise click.UsageError(f"--out {out} exists: pass --overwrite to replace it, or choose another --out")
    run_export(checkpoint, out)
    log.info("wrote %s", out)


@main.command()
@click.argument("photos", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Training folder to write.")
@click.option("--size", type=click.Choice(["32", "64", "128"]), default="128", show_default=True)
@click.option(
    "--min-side",
    type=FiniteRange(min=1),
    default=None,
    help="Smallest face crop, in photo pixels, to keep (default: --size; smaller ones would be enlarged).",
)
@click.option(
    "--aligned",
    "aligned",
    is_flag=True,
    help="The photos are aligned like CelebA's: take their canonical crop instead of detecting the face.",
)
@click.option(
    "--crop",
    default="center:0.72",
    show_default=True,
    callback=_crop_option,
    help="With --aligned: the canonical crop of the aligned photos.",
)
@click.option("--no-progress", is_flag=True)
@handle_errors
def prepare(
    photos: Path, out: Path, size: str, min_side: float | None, aligned: bool, crop: str, no_progress: bool
) -> None:
    """Turn a folder of face photos into a training folder of face crops at --size.

    Faces are found and framed as completion frames them. Photos with no face, several faces, a
    face too small or at the edge are counted, named and listed in OUT/rejected.tsv. Rerun the
    same command to resume."""
    from .prepare import prepare_folder, summary

    if out.resolve() == photos.resolve() or photos.resolve() in out.resolve().parents:
        raise click.UsageError(f"--out {out}: must not be inside the photo folder {photos}")
    check_writable(out, folder=True)
    report = prepare_folder(
        photos, out, int(size), min_side, crop if aligned else None, progress=_progress(no_progress)
    )
    for line in summary(report, out):
        log.info("%s", line)


@main.command()
@click.option("--model", type=click.Path(path_type=Path), default=None, help=MODEL_HELP)
@click.option("--n", "n", type=click.IntRange(1, 1024), default=64, show_default=True)
@click.option("--out", required=True, type=click.Path(path_type=Path))
@click.option("--seed", type=SEED, default=0, show_default=True)
@handle_errors
def sample(model: Path | None, n: int, out: Path, seed: int) -> None:
    """Write a grid of faces generated from random z."""
    from .grid import save_grid

    output_format(out)
    check_writable(out)
    m = load_model(model)  # a path, a shipped name, or None: the default
    z = torch.rand(n, m.config.nz, generator=torch.Generator().manual_seed(seed)) * 2 - 1
    with torch.no_grad():
        images = m.generator(z)
    save_grid(out, images)
    log.info("wrote %s", out)


def _mask_type_option(ctx: click.Context, param: click.Parameter, value: str | None) -> MaskType | None:
    from .masks import MaskType

    if value is None:
        return None
    try:
        return MaskType(value)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None


def completion_options(fn):  # noqa: ANN001, ANN201 - decorator shared by complete and batch
    """The optimisation options common to `complete`, `batch` and `evaluate`: --model, every
    CompletionOptions field but the candidates' (see click_options), then how to run."""
    opts = [
        click.option("--model", type=click.Path(path_type=Path), default=None, help=MODEL_HELP),
        *click_options(CompletionOptions, ""),
        click.option(
            "--threads",
            type=click.IntRange(min=0),
            default=0,
            help="CPU threads for torch (0: the cores other processes leave free when the job starts).",
        ),
        click.option(
            "--mask-convention",
            type=click.Choice(["white-hole", "black-hole"]),
            default="white-hole",
            show_default=True,
            help="Which colour marks the hole in mask files.",
        ),
        click.option("--device", type=click.Choice(DEVICES), default="cpu", show_default=True),
    ]
    return _apply(fn, opts)


def candidate_options(fn):  # noqa: ANN001, ANN201 - decorator
    """--samples and --spread (`complete` alone offers candidates), from their fields."""
    return _apply(fn, click_options(CompletionOptions, "candidates"))


def build_completer(kw: dict, choose_threads: bool = True):  # noqa: ANN201
    """Load the model and make a Completer from the shared options (consumed from kw); with
    choose_threads, set torch's threads for the job about to run (a server sets them per request)."""
    from .complete import Completer
    from .device import resolve_device

    threads = kw.pop("threads")
    try:
        device = resolve_device(kw.pop("device"))
    except ValueError as e:
        raise click.UsageError(str(e)) from None
    model = load_model(kw.pop("model"), device)
    if device.type == "cpu" and choose_threads:
        _choose_threads(threads)
    # Every option that names a CompletionOptions field goes to it (`complete` alone offers
    # --samples and --spread); nothing is listed twice.
    opts = CompletionOptions(**{f.name: kw.pop(f.name) for f in fields(CompletionOptions) if f.name in kw})
    try:
        return Completer(model, opts)
    except ValueError as e:
        raise click.UsageError(str(e)) from None


def _choose_threads(threads: int) -> None:
    """--threads, or the cores other processes leave free (device.free_threads), said when fewer
    than all: a job that took every core beside another would crawl for both."""
    from .device import set_threads, usable_cpus

    n, cpus = set_threads(threads, _METER), usable_cpus()
    if not threads and n < cpus:
        busy = _METER.others() if _METER is not None else None  # the reading set_threads used
        log.info(
            "other processes keep %s of %d cores busy: searching on %s (--threads to choose)",
            f"{busy:.1f}" if busy is not None else "some", cpus, plural(n, "thread"),
        )  # fmt: skip


def _box_option(ctx: click.Context, param: click.Parameter, value: str | None):  # noqa: ANN202
    from .photo import parse_box

    if value is None:
        return None
    try:
        return parse_box(value)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None


@main.command()
@click.option("--image", required=True, type=click.Path(path_type=Path), help="Image to complete.")
@click.option(
    "--mask",
    type=click.Path(path_type=Path),
    default=None,
    help="Mask image (white = hole by default). Without --mask or --mask-type, transparency is the hole.",
)
@click.option(
    "--mask-type", default=None, callback=_mask_type_option, help="A generated mask; see `masks --help`."
)
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Output image.")
@click.option("--concat", is_flag=True, help="Write input | masked | G(z*) | completed side by side instead.")
@click.option(
    "--quality",
    type=click.IntRange(1, 100),
    default=None,
    help="For a .jpg or .webp --out: 1-100. Default: JPEG 95 with full colour resolution (the only "
    "lossy case), WebP lossless. PNG, WebP, TIFF and BMP keep every pixel outside the hole exact.",
)
@click.option(
    "--save-steps",
    type=click.IntRange(min=1),
    default=None,
    help="Save a frame every K iterations (and an animated GIF) into --steps-dir.",
)
@click.option("--steps-dir", type=click.Path(path_type=Path), default=None)
@click.option("--box", default=None, callback=_box_option, help="The face's box x,y,w,h (skips detection).")
@click.option(
    "--face",
    type=click.IntRange(min=1),
    default=None,
    help="Complete only the N-th face found (1 = the largest); by default every face with a hole.",
)
@click.option(
    "--aligned", is_flag=True, help="The input is an aligned face crop: no detection, canonical crop."
)
@candidate_options
@completion_options
@handle_errors
def complete(
    image: Path,
    mask: Path | None,
    mask_type: MaskType | None,
    out: Path,
    concat: bool,
    save_steps: int | None,
    steps_dir: Path | None,
    box,  # noqa: ANN001
    face: int | None,
    aligned: bool,
    quality: int | None,
    **kw,
) -> None:  # noqa: ANN003
    """Fill the hole of one face image.

    An image at the model's size, or one marked --aligned, is used with the canonical crop; any
    other photo has its faces found (or one given by --box or picked by --face), each framed as
    in training by its landmarks; every face with a hole is completed and pasted back into the
    hole at full resolution. A --mask-type is drawn on each face."""
    from .inputs import load_pair

    if mask is not None and mask_type is not None:
        raise click.UsageError("give either --mask or --mask-type, not both")
    if (save_steps is None) != (steps_dir is None):
        raise click.UsageError("--save-steps and --steps-dir go together")
    if sum((box is not None, aligned, face is not None)) > 1:
        raise click.UsageError("give at most one of --box, --face and --aligned")
    if same_file(out, image) or (mask is not None and same_file(out, mask)):
        raise click.UsageError(f"--out {out} would overwrite an input file")
    # The output's type, and whether --quality means anything for it, before any work.
    fmt = output_format(out)
    if quality is not None and fmt not in QUALITY_FORMATS:
        raise click.BadParameter(
            f"{quality}: a quality applies only to a .jpg or .webp output, not {out.suffix}",
            param_hint="--quality",
        )
    check_writable(out)  # before the model loads and the search runs, not after
    if steps_dir is not None:
        check_writable(steps_dir, folder=True)
    convention = kw.pop("mask_convention")
    completer = build_completer(kw)
    img, known = load_pair(image, mask, mask_type, convention)
    h, w = img.shape[:2]
    if box is not None and (box.x >= w or box.y >= h or box.x + box.w <= 0 or box.y + box.h <= 0):
        raise click.BadParameter(
            f"{box.x},{box.y},{box.w},{box.h} lies outside the {w}x{h} image {image}", param_hint="--box"
        )
    steps: list[tuple[int, torch.Tensor]] = []
    res = completer.complete(
        img, known, box=box, aligned=aligned, face=face, name=str(image),
        callback=(lambda it, g: steps.append((it, g[0].cpu()))) if save_steps else None,
        every=save_steps or 0,
    )  # fmt: skip
    if steps and res.crop is not None:
        _write_steps(steps_dir, res, steps)
    # With a mask or mask type, a transparent image keeps its transparency (keep_alpha).
    keep = res.hole_known if (mask is not None or mask_type is not None) else None
    _write_completion(res, out, image, concat, quality, keep)
    log.info("wrote %s (loss %.2f, %d steps, seed %d)", out, res.loss, res.steps, res.seed)
    for rank, cand in enumerate(res.candidates, 1):
        path = out.with_name(f"{out.stem}.seed{cand.seed}{out.suffix}")
        _write_completion(cand, path, image, concat, quality, keep)
        log.info("candidate %d: seed %d, loss %.2f -> %s", rank, cand.seed, cand.loss, path)


def _write_steps(steps_dir: Path, res, steps: list) -> None:  # noqa: ANN001
    """--save-steps: each kept G(z) with the known pixels, as PNG frames and an animated GIF."""
    import numpy as np
    from PIL import Image

    from .grid import to_uint8
    from .imageio import atomic_write, save_image
    from .photo import resize

    m = res.known[..., None]
    frames = [(it, np.where(m, res.crop, to_uint8(g))) for it, g in steps]
    for it, frame in frames:
        save_image(steps_dir / f"step_{it:05d}.png", frame)
    gif = [Image.fromarray(resize(f, 128)) for _, f in frames]
    atomic_write(
        steps_dir / "steps.gif",
        lambda tmp: gif[0].save(tmp, format="GIF", save_all=True, append_images=gif[1:], duration=80, loop=0),
    )


def _write_completion(  # noqa: ANN001 - res: a Completion
    res, path: Path, source: Path, concat: bool, quality: int | None, known=None
) -> None:
    """The completed image like its source (--concat: input | masked | G(z*) | completed); with
    `known`, the source's transparency kept (imageio.keep_alpha)."""
    import numpy as np

    from .imageio import save_image, save_like_source

    if concat and res.crop is not None:
        from .photo import crop_to_model

        masked = np.where(res.known[..., None], res.crop, 128).astype(np.uint8)
        completed = crop_to_model(res.image, res.framing)
        save_image(path, np.concatenate([res.crop, masked, res.generated, completed], axis=1))
    else:
        save_like_source(path, res.image, source, quality=quality, known=known)


@main.command()
@click.option(
    "--type", "mask_type", required=True, callback=_mask_type_option, help="Mask type (listed above)."
)
@click.option("--out", required=True, type=click.Path(path_type=Path))
@click.option("--size", type=click.IntRange(1, 10000), default=64, show_default=True, help="Side in pixels.")
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option(
    "--mask-convention",
    type=click.Choice(["white-hole", "black-hole"]),
    default="white-hole",
    show_default=True,
)
@handle_errors
def masks(mask_type: MaskType, out: Path, size: int, seed: int, mask_convention: str) -> None:
    """Write a generated mask for inspection (white = hole by default).

    \b
    Mask types (the same for --mask-type of complete, batch and evaluate):
      center                    the central quarter (rows and columns size/4 to 3*size/4)
      left, right, top, bottom  that half of the image (half = left)
      random:F                  each pixel missing with probability F, 0 < F < 1 (random:0.8)
      pattern                   random blobs and brush strokes over about 25 % of the image
      grid:STEP                 only every STEP-th pixel in both directions known, STEP >= 2
      lowres:FACTOR             only one pixel per FACTOR x FACTOR cell known, FACTOR >= 2
      eyes, mouth               a band over the eyes or the mouth of an aligned face
      full                      everything is a hole
    Random types are reproducible with --seed."""
    from .masks import make_mask, save_mask

    save_mask(out, make_mask(mask_type, size, size, seed=seed), mask_convention)
    log.info("wrote %s", out)


@main.command()
@click.option(
    "--images", required=True, type=click.Path(path_type=Path), help="Folder of ground-truth faces."
)
@click.option(
    "--mask-types",
    default="center,left,random:0.8,pattern,eyes,mouth",
    show_default=True,
    help="Comma-separated mask types.",
)
@click.option("--n", "n", type=click.IntRange(min=1), default=None, help="Use the first N images (sorted).")
@click.option("--offset", type=click.IntRange(min=0), default=0, help="Skip the first N images (sorted).")
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Folder for results.md, results.json and comparison grids.",
)
@click.option("--no-baselines", is_flag=True, help="Skip OpenCV Telea and Navier-Stokes.")
@completion_options
@handle_errors
def evaluate(
    images: Path,
    mask_types: str,
    n: int | None,
    offset: int,
    batch_size: int,
    out: Path | None,
    no_baselines: bool,
    **kw,
) -> None:  # noqa: ANN003
    """Score a model on ground-truth faces against OpenCV's Telea and Navier-Stokes inpainting."""
    from .data import select_files
    from .evaluate import evaluate as run_evaluate
    from .evaluate import load_images
    from .masks import parse_mask_type

    try:
        types = [parse_mask_type(t.strip()) for t in mask_types.split(",") if t.strip()]
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--mask-types") from None
    if out is not None:
        check_writable(out, folder=True)
    kw.pop("mask_convention")
    completer = build_completer(kw)
    faces = load_images(select_files(images, offset, n))
    report = run_evaluate(
        completer, faces, types, batch_size, not no_baselines, out, progress=_progress(False)
    )
    click.echo(report.markdown())


@main.command("train-encoder")
@click.option("--model", type=click.Path(path_type=Path), default=None, help=MODEL_HELP)
@click.option("--data", required=True, type=click.Path(path_type=Path), help="Folder of training faces.")
@functools.partial(_apply, opts=click_options(EncoderOptions))
@click.option(
    "--out",
    required=True,
    type=click.Path(path_type=Path),
    help="Bundle to write. Required, so the input model is never replaced unless named here too.",
)
@click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True)
@click.option("--no-progress", is_flag=True)
@handle_errors
def train_encoder(model: Path | None, data: Path, out: Path, device: str, no_progress: bool, **kw) -> None:  # noqa: ANN003
    """Train the encoder that gives completion its starting z, and store it in the model bundle."""
    from .device import resolve_device
    from .encoder import add_encoder
    from .encoder import train_encoder as run

    path = model_path(model)
    check_writable(out)  # before the training steps, not after
    try:
        dev = resolve_device(device)
    except ValueError as e:
        raise click.UsageError(str(e)) from None
    m = load_model(path, dev)
    opts = EncoderOptions(data=str(data), progress=_progress(no_progress), **kw)
    enc = run(m, opts)
    add_encoder(m.to("cpu"), enc.to("cpu"), out, opts)
    log.info("wrote %s", out)


# Images per optimisation batch for `batch`, from benchmarks/batch.py on this project's 2-core CPU
# (width-64 random-weight 64 px model, 20 iterations, centre mask, CelebA faces 009001 on; a training
# run was using the cores, so the numbers are noisy). One torch thread, 128 faces, whole pipeline:
# 4.7 / 4.5 / 5.4 / 6.8 images/s at batch size 8 / 16 / 32 / 64, and 5.4 / 4.4 / 4.5 at 16 / 32 / 64
# on a rerun; the optimisation alone: best of 3, 138 / 151 / 160 / 149 image-iterations/s at
# 8 / 16 / 32 / 64, i.e. a plateau from 16 on. With two threads contending with another process,
# per-batch overhead dominates and larger is better (8 / 15 / 27 / 48 image-iterations/s). 32 sits
# on the plateau and holds half the decoded images of 64 in memory (about three chunks are alive
# at once, which matters for large photos). On a GPU, larger batches pay off: pass --batch-size.
BATCH_SIZE_DEFAULT = 32


def _shard_option(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[int, int] | None:
    from .batch import parse_shard

    if value is None:
        return None
    try:
        return parse_shard(value)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None


@main.command("batch")
@click.option(
    "--images",
    required=True,
    type=click.Path(path_type=Path),
    help="Folder of images (subfolders are walked and mirrored under --out).",
)
@click.option(
    "--masks",
    "masks_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Folder of masks matched by relative path and stem (IOPaint); every file under --images is "
    "an image. --masks = --images: LaMa's layout, x_mask*.png beside x.png.",
)
@click.option("--mask", type=click.Path(path_type=Path), default=None, help="One mask file for every image.")
@click.option(
    "--mask-type",
    default=None,
    callback=_mask_type_option,
    help="One generated mask type for every image; see `masks --help`.",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(path_type=Path),
    help="Output folder: <out>/<relative path>/<stem>.png.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=BATCH_SIZE_DEFAULT,
    show_default=True,
    help="Images optimised together in one tensor batch.",
)
@click.option("--overwrite", is_flag=True, help="Redo outputs that exist (by default a rerun skips them).")
@click.option(
    "--report",
    type=click.Path(path_type=Path),
    default=None,
    help="Write a JSON report (per image: status, error, loss, seconds); a shard writes "
    "NAME.shardIofN.json, under torchrun each rank NAME.rankR.json.",
)
@click.option(
    "--shard",
    default=None,
    callback=_shard_option,
    help="I/N: process only files I, I+N, I+2N, ... of the sorted list (0 <= I < N); under "
    "torchrun (only there), RANK/WORLD_SIZE by default.",
)
@click.option(
    "--aligned",
    is_flag=True,
    help="The images are aligned face crops: no detection, canonical crop (images at the model's "
    "size always are).",
)
@click.option("--no-progress", is_flag=True)
@completion_options
@handle_errors
def batch_command(
    images: Path,
    masks_dir: Path | None,
    mask: Path | None,
    mask_type: MaskType | None,
    out: Path,
    batch_size: int,
    overwrite: bool,
    report: Path | None,
    shard: tuple[int, int] | None,
    aligned: bool,
    no_progress: bool,
    **kw,
) -> None:  # noqa: ANN003
    """Complete every image of a folder, many at once; rerunning resumes. Exit 1 if any image failed."""
    from .batch import pair_files, run_batch, shard_from_env
    from .batch import shard as take_shard

    if sum(x is not None for x in (masks_dir, mask, mask_type)) != 1:
        raise click.UsageError("give exactly one of --masks, --mask or --mask-type")
    from_env = shard is None and shard_from_env() is not None
    index, count = shard or shard_from_env() or (0, 1)
    if count > 1 and report is not None:  # one report per shard: shards never overwrite each other's
        tag = f"rank{index}" if from_env else f"shard{index}of{count}"
        report = report.with_name(f"{report.stem}.{tag}{report.suffix or '.json'}")
    check_writable(out, folder=True)  # before any optimisation, not at the first save
    if report is not None:
        check_writable(report)
    convention = kw.pop("mask_convention")
    completer = build_completer(kw)
    jobs, failures = pair_files(images, masks_dir, exclude=[out])
    if count > 1:
        jobs, failures = take_shard(jobs, index, count), take_shard(failures, index, count)
        log.info("shard %d/%d: %s", index, count, plural(len(jobs) + len(failures), "image"))
    result = run_batch(
        completer,
        jobs,
        out,
        batch_size,
        overwrite,
        mask=mask,
        mask_type=mask_type,
        convention=convention,
        failures=failures,
        report=report,
        progress=_progress(no_progress) and not (from_env and index > 0),
        aligned=aligned,
    )
    quiet = click.get_current_context().find_root().params.get("quiet", False)
    if result.failed or not quiet:
        click.echo(result.summary(), err=True)
    for rel, error in result.failures[:20]:
        click.echo(f"  failed: {rel}: {error}", err=True)
    if len(result.failures) > 20:
        more = f"  ... and {len(result.failures) - 20} more"
        click.echo(more + (f" (see {report})" if report else ""), err=True)
    if result.report_path is not None:
        log.info("wrote %s", result.report_path)
    if result.failed:
        sys.exit(1)


@main.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on; anything but 127.0.0.1 lets other machines in.",
)
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option("--model", type=click.Path(path_type=Path), default=None, help=MODEL_HELP)
@click.option("--device", type=click.Choice(DEVICES), default="cpu", show_default=True)
@click.option(
    "--threads",
    type=click.IntRange(min=0),
    default=0,
    help="CPU threads per request (0: the cores other processes leave free when it starts).",
)
@click.option(
    "--queue",
    "queue_size",
    type=click.IntRange(min=1),
    default=None,
    help="Requests waiting or running at once; more get 503 (default 8).",
)
@click.option(
    "--max-upload-mb",
    type=FiniteRange(min=0, min_open=True),
    default=None,
    help="Largest request body in MiB; larger get 413 (default 20).",
)
@click.option(
    "--max-pixels",
    type=click.IntRange(min=1),
    default=None,
    help="Largest image in pixels; larger are refused from their header (default 25,000,000: "
    "a 6000x4000 photo).",
)
@handle_errors
def serve(
    host: str,
    port: int,
    model: Path | None,
    device: str,
    threads: int,
    queue_size: int | None,
    max_upload_mb: float | None,
    max_pixels: int | None,
) -> None:
    """Serve the painting page and the HTTP API (POST /api/complete) with the model loaded once.

    The page is at http://HOST:PORT/, the API's OpenAPI description at /openapi.json."""
    from .serve import MAX_PIXELS, MAX_UPLOAD, QUEUE_SIZE, bind, create_app, run_server

    completer = build_completer(
        {**_serve_defaults(), "model": model, "device": device, "threads": threads}, choose_threads=False
    )
    if host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("listening on %s: other machines can reach this server", host)
    app = create_app(
        completer,
        max_upload=MAX_UPLOAD if max_upload_mb is None else int(max_upload_mb * 1024 * 1024),
        queue_size=queue_size or QUEUE_SIZE,
        max_pixels=max_pixels or MAX_PIXELS,
        threads=threads,
    )
    sock = bind(host, port)  # a busy port is one error line (exit 1), before "serving"
    port = sock.getsockname()[1]  # the one the system chose for --port 0
    log.info("serving %s on http://%s:%d/ (Ctrl-C stops)", completer.model.path, host, port)
    run_server(app, sock)


def _serve_defaults() -> dict:
    """The shared completion options at their defaults (serve takes them per request)."""
    d = CompletionOptions()
    return {f.name: getattr(d, f.name) for f in public_fields(CompletionOptions, "")}
