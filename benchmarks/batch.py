"""Batch completion throughput and memory: `completion batch` against the single-image path.

On N validation faces (CelebA 009001.jpg on, from ../shared/datasets/celeba_subset, copied into a
temp folder; never into the repository) with the centre mask and the same completion settings, in
one process:

  * single: load, Completer.complete and save, one image at a time (what `complete` does per call);
  * batch:  completion.batch.run_batch, batch-size images optimised together in one tensor batch,
            loading and saving overlapped on two threads (what `completion batch` does);
  * sweep (--sweep 8,16,32,64): batch throughput at each batch size, to choose the CLI default;
  * peak RSS of a `completion batch` subprocess on --rss-n images (e.g. 100 and 5000: the faces
    repeated as symlinks in a temp folder), from os.wait4's rusage of that child, to show memory
    does not grow with the folder.

Without --model, completion/weights/celeba64.pt is used if present, else a width-64 random-weight model
(same cost per step as a trained one).

    .venv/bin/python benchmarks/batch.py [--n 256] [--iterations 100] [--batch-size 16]
        [--sweep 8,16,32,64] [--rss-n 100,5000] [--rss-iterations 0] [--rss-model M]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from completion.batch import pair_files, run_batch
from completion.bundle import default_model_path, load_model, save_model
from completion.cli import BATCH_SIZE_DEFAULT
from completion.complete import Completer, CompletionOptions
from completion.config import ModelConfig
from completion.imageio import save_image
from completion.inputs import load_pair
from completion.models import Discriminator, Generator

REPO = Path(__file__).resolve().parents[1]
SHARED_FACES = REPO / ".." / "shared" / "datasets" / "celeba_subset" / "img_align_celeba"
FIRST = 9001
MASK = "center"


def face_names(n: int) -> list[str]:
    return [f"{FIRST + i:06d}.jpg" for i in range(n)]


def copy_faces(dst: Path, n: int) -> Path:
    dst.mkdir(parents=True)
    for name in face_names(n):
        shutil.copyfile(SHARED_FACES / name, dst / name)
    return dst


def repeat_faces(src: Path, dst: Path, n: int) -> Path:
    """n images as symlinks to the faces in src, 500 to a subfolder."""
    faces = sorted(src.iterdir())
    for i in range(n):
        folder = dst / f"part{i // 500:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        os.symlink(faces[i % len(faces)], folder / f"{i:06d}.jpg")
    return dst


def random_model(path: Path, width: int = 64) -> Path:
    torch.manual_seed(0)
    cfg = ModelConfig(image_size=64, ngf=width, ndf=width)
    save_model(path, cfg, Generator(cfg).eval(), Discriminator(cfg).eval(), meta={"random": True})
    return path


def single_path(completer: Completer, images: Path, out: Path) -> tuple[int, float]:
    files = sorted(images.iterdir())
    t0 = time.perf_counter()
    for f in files:
        img, known = load_pair(f, None, MASK)
        save_image(out / f"{f.stem}.png", completer.complete(img, known).image)
    return len(files), time.perf_counter() - t0


def batch_path(completer: Completer, images: Path, out: Path, batch_size: int) -> tuple[int, float]:
    t0 = time.perf_counter()
    jobs, _ = pair_files(images)
    rep = run_batch(completer, jobs, out, batch_size, mask_type=MASK, progress=False, aligned=True)
    assert rep.failed == 0, rep.failures
    return rep.done, time.perf_counter() - t0


def peak_rss(
    images: Path, out: Path, model: Path, iterations: int, batch_size: int, threads: int | None
) -> tuple[float, float]:
    """(peak RSS in MiB, seconds) of one `completion batch` subprocess."""
    cmd = [sys.executable, "-m", "completion", "-q", "batch", "--images", str(images), "--out", str(out),
           "--mask-type", MASK, "--model", str(model), "--iterations", str(iterations), "--blend", "none",
           "--batch-size", str(batch_size), "--no-progress", "--aligned"]  # fmt: skip
    t0 = time.perf_counter()
    env = {**os.environ, **({"OMP_NUM_THREADS": str(threads)} if threads else {})}
    proc = subprocess.Popen(cmd, cwd=REPO, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"completion batch failed with exit code {proc.returncode}")
    return usage.ru_maxrss / 1024, time.perf_counter() - t0  # ru_maxrss is in KiB on Linux


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--n", type=int, default=256, help="Validation faces (at most 256).")
    ap.add_argument("--iterations", type=int, default=CompletionOptions().iterations)
    ap.add_argument("--batch-size", type=int, default=BATCH_SIZE_DEFAULT)
    ap.add_argument("--sweep", default="", help="Comma-separated batch sizes to time (batch path only).")
    ap.add_argument("--no-single", action="store_true", help="Skip the single-image comparison.")
    ap.add_argument("--rss-n", default="100,5000", help="Image counts for peak RSS ('' to skip).")
    ap.add_argument("--rss-iterations", type=int, default=0)
    ap.add_argument("--rss-model", type=Path, default=None, help="Model for the RSS runs (default: --model).")
    ap.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads here and OMP_NUM_THREADS of the RSS subprocesses (default: torch's)",
    )
    args = ap.parse_args()
    if not SHARED_FACES.is_dir():
        raise SystemExit(f"{SHARED_FACES} not found")
    if not 1 <= args.n <= 256:
        raise SystemExit("--n must be between 1 and 256")
    if args.threads:
        torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory(prefix="batch_bench_") as tmp:
        tmp = Path(tmp)
        model_path = args.model
        if model_path is None:
            model_path = default_model_path() if default_model_path().exists() else random_model(tmp / "m.pt")
        model = load_model(model_path)
        completer = Completer(model, CompletionOptions(iterations=args.iterations))
        faces = copy_faces(tmp / "faces", args.n)
        cfg = model.config
        print(f"faces: {args.n} ({face_names(args.n)[0]}-{face_names(args.n)[-1]}), mask {MASK}; model "
              f"{model_path.name} ({cfg.image_size}px, ngf {cfg.ngf}, ndf {cfg.ndf}"
              f"{', random weights' if model.meta.get('random') else ''}); iterations {args.iterations}; "
              f"torch threads {torch.get_num_threads()}; cpus {os.cpu_count()}", flush=True)  # fmt: skip

        if not args.no_single:
            n, s = single_path(completer, faces, tmp / "out_single")
            single = n / s
            print(f"single-image path:    {n} images in {s:7.1f} s = {single:6.2f} images/s", flush=True)
            n, s = batch_path(completer, faces, tmp / "out_batch", args.batch_size)
            rate = n / s
            print(f"batch (batch size {args.batch_size:2d}): {n} images in {s:7.1f} s = {rate:6.2f} images/s "
                  f"({rate / single:.1f}x)", flush=True)  # fmt: skip
        for k, bs in enumerate(int(b) for b in args.sweep.split(",") if b.strip()):
            n, s = batch_path(completer, faces, tmp / f"out_sweep{k}", bs)
            print(f"sweep: batch size {bs:3d}: {n} images in {s:7.1f} s = {n / s:6.2f} images/s", flush=True)

        rss_model = args.rss_model or model_path
        for count in [int(c) for c in args.rss_n.split(",") if c.strip()]:
            folder = repeat_faces(faces, tmp / f"rss{count}", count)
            mib, s = peak_rss(
                folder, tmp / f"rss_out{count}", rss_model, args.rss_iterations, args.batch_size, args.threads
            )
            print(f"peak RSS of `completion batch` on {count:5d} images: {mib:7.1f} MiB ({s:.1f} s, "
                  f"iterations {args.rss_iterations}, blend none, batch size {args.batch_size}, "
                  f"model {rss_model.name})", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
