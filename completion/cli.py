"""The `completion` command line: a thin layer that parses options, calls the Python API, and
turns library exceptions into one-line errors (exit 1) and bad options into usage errors (exit 2)."""

from __future__ import annotations

import functools
import logging
import sys
from pathlib import Path

import click
import torch

from . import __version__
from .bundle import default_model_path, load_model
from .config import ModelConfig, parse_crop
from .errors import CompletionError

log = logging.getLogger("completion")


def _crop_option(ctx: click.Context, param: click.Parameter, value: str) -> str:
    try:
        parse_crop(value)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None
    return value


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
            click.echo(f"error: {e}", err=True)
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
    logging.basicConfig(
        level=logging.WARNING if quiet else logging.INFO, format="%(message)s", stream=sys.stderr
    )


MODEL_HELP = "Model bundle (.pt); default: the shipped face model."


def _model_path(model: Path | None) -> Path:
    return model if model is not None else default_model_path()


@main.command()
@click.option("--data", type=click.Path(path_type=Path), help="Folder of images (searched recursively).")
@click.option("--out", "out", required=True, type=click.Path(path_type=Path), help="Run folder.")
@click.option("--epochs", type=click.IntRange(min=1), default=25, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=2), default=64, show_default=True)
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=2e-4, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--image-size", type=click.Choice(["32", "64", "128"]), default="64", show_default=True)
@click.option("--ngf", type=click.IntRange(min=1), default=64, show_default=True, help="Generator width.")
@click.option("--ndf", type=click.IntRange(min=1), default=64, show_default=True, help="Discriminator width.")
@click.option("--crop", default="center:0.72", show_default=True, callback=_crop_option,
              help="'center:F' keeps the centred square of side F x width; 'none' only resizes.")
@click.option("--offset", type=click.IntRange(min=0), default=0, help="Skip the first N images (sorted).")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Use at most N images.")
@click.option("--label-smoothing", type=click.FloatRange(0, 0.5), default=0.0, show_default=True)
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--checkpoint-minutes", type=click.FloatRange(min=0), default=10.0, show_default=True)
@click.option("--resume", is_flag=True, help="Continue from RUN/checkpoint.pt exactly.")
@click.option("--no-progress", is_flag=True)
@handle_errors
def train(data, out, epochs, batch_size, lr, seed, image_size, ngf, ndf, crop, offset, limit,  # noqa: ANN001
          label_smoothing, device, checkpoint_minutes, resume, no_progress) -> None:
    """Train a DCGAN on a folder of face images (CelebA layout works as is)."""
    from .train import TrainOptions, checkpoint_path
    from .train import train as run_train

    if not resume and data is None:
        raise click.UsageError("--data is required (unless --resume)")
    if resume and not checkpoint_path(out).exists() and data is None:
        raise click.UsageError(f"--resume: {checkpoint_path(out)} does not exist and no --data was given")
    if not resume and checkpoint_path(out).exists():
        raise click.UsageError(f"{out} already holds a checkpoint: pass --resume, or choose another --out")
    cfg = ModelConfig(image_size=int(image_size), ngf=ngf, ndf=ndf, crop=crop)
    opts = TrainOptions(
        data=str(data), out=str(out), epochs=epochs, batch_size=batch_size, lr=lr, seed=seed,
        offset=offset, limit=limit, label_smoothing=label_smoothing, device=device,
        checkpoint_minutes=checkpoint_minutes, progress=not no_progress,
    )
    try:
        path = run_train(cfg, opts, resume=resume)
    except ValueError as e:
        raise click.UsageError(str(e)) from None
    log.info("done: %s (export it with `completion export %s --out MODEL.pt`)", path, path)


@main.command()
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Model bundle to write.")
@handle_errors
def export(checkpoint: Path, out: Path) -> None:
    """Turn a training checkpoint (or run folder) into a shippable model bundle."""
    from .train import checkpoint_path
    from .train import export as run_export

    if checkpoint.is_dir():
        checkpoint = checkpoint_path(checkpoint)
    run_export(checkpoint, out)
    log.info("wrote %s", out)


@main.command()
@click.option("--model", type=click.Path(path_type=Path), default=None, help=MODEL_HELP)
@click.option("--n", "n", type=click.IntRange(1, 1024), default=64, show_default=True)
@click.option("--out", required=True, type=click.Path(path_type=Path))
@click.option("--seed", type=int, default=0, show_default=True)
@handle_errors
def sample(model: Path | None, n: int, out: Path, seed: int) -> None:
    """Write a grid of faces generated from random z."""
    from .grid import save_grid

    m = load_model(_model_path(model))
    z = torch.rand(n, m.config.nz, generator=torch.Generator().manual_seed(seed)) * 2 - 1
    with torch.no_grad():
        images = m.generator(z)
    save_grid(out, images)
    log.info("wrote %s", out)
