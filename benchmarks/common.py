"""What the benchmarks share: where the validation faces are, and the mask types they cover."""

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from completion.bundle import Model, default_model_path, load_model
from completion.data import select_files
from completion.masks import ALL_MASK_TYPES

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO / ".." / "shared" / "datasets" / "celeba_subset" / "img_align_celeba"
# The shared outside judge of faces (measuring only; never trained against).
JUDGE = SHARED.parents[2] / "tools" / "face_judge.py"
# Every mask type of the completion issue, in the order the README tables use.
MASK_TYPES = ",".join(ALL_MASK_TYPES)


def face_parser(
    doc: str, n: int, mask_types: str, batch_size: int = 64, batch_help: str | None = None
) -> argparse.ArgumentParser:
    """The options every benchmark on validation faces takes: --model, --n, --offset, --mask-types,
    --batch-size and --threads (each script adds its own)."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--model", type=Path, default=default_model_path())
    ap.add_argument("--n", type=int, default=n)
    ap.add_argument("--offset", type=int, default=9000, help="first validation image (0-based)")
    ap.add_argument("--mask-types", default=mask_types)
    ap.add_argument("--batch-size", type=int, default=batch_size, help=batch_help)
    ap.add_argument("--threads", type=int, default=0)
    return ap


def start(ap: argparse.ArgumentParser) -> tuple[argparse.Namespace, Model]:
    """Parse the arguments, set torch's threads, load the model."""
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    return args, load_model(args.model)


def validation_files(args: argparse.Namespace) -> list[Path]:
    return select_files(SHARED, args.offset, args.n)


def validation_faces(args: argparse.Namespace, model: Model) -> list[np.ndarray]:
    """The --n validation faces from --offset, at the model's size and crop."""
    from completion.evaluate import load_faces

    return load_faces(validation_files(args), model.config.image_size, model.config.crop)


def complete_in_batches(completer, items, batch_size: int, **kw) -> list:  # noqa: ANN001, ANN003
    """`completer.complete_many` over (image, known) items, batch_size at a time; results in order."""
    done = []
    for s in range(0, len(items), batch_size):
        done += completer.complete_many(items[s : s + batch_size], **kw)
    return done


def median_single_seconds(completer, items) -> float:  # noqa: ANN001
    """Median wall time of one-image `complete()` calls: a single call is at the mercy of the CPU."""
    times = []
    for image, known in items:
        t0 = time.perf_counter()
        completer.complete(image, known)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def face_judge(*args: str) -> str:
    """Run ../shared/tools/face_judge.py with these arguments; its standard output."""
    cmd = [sys.executable, str(JUDGE), *args]
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
