"""FD against images seen: the kept checkpoints of a training run, judged by an outside measure.

For every RUN/checkpoint_epoch_NNN.pt (`completion train --keep-every N`), export the bundle as
`completion export` does (the averaged G, and with --raw also the plain G), draw 512 faces exactly
as `completion sample --n 64 --seed 1..8` does, and score them with the shared face judge's
Fréchet distance against the 500 validation faces 009001–009500. Results are appended to
RUN/fd.csv (checkpoints already there are skipped) and plotted to --plot.

    python benchmarks/fd_curve.py runs/celeba64 [--raw] [--plot models/fd_curve.png]

The judge is for measuring only: nothing here feeds back into training or chooses a checkpoint.
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F
from common import JUDGE, SHARED, face_judge

from completion.bundle import load_model
from completion.grid import save_grid
from completion.train import export, load_checkpoint

FACES = SHARED


def sample_grids(model_path: Path, folder: Path, seeds: range = range(1, 9), n: int = 64) -> None:
    """What `completion sample --n 64 --seed S` writes, for each seed; a model of another size
    than the judge's 64 px has its faces shrunk to 64 px (area average) first."""
    model = load_model(model_path)
    for seed in seeds:
        z = torch.rand(n, model.config.nz, generator=torch.Generator().manual_seed(seed)) * 2 - 1
        with torch.no_grad():
            faces = model.generator(z)
            if faces.shape[-1] != 64:
                faces = F.interpolate(faces, size=(64, 64), mode="area")
            save_grid(folder / f"g{seed}.png", faces)


def frechet(samples: Path, real_list: Path) -> float:
    out = face_judge("fd", str(samples), str(real_list))
    return float(re.search(r"fd=([\d.]+)", out).group(1))


def score(checkpoint: Path, use_ema: bool, real_list: Path) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        bundle = Path(tmp) / "m.pt"
        export(checkpoint, bundle, use_ema=use_ema)
        grids = Path(tmp) / "grids"
        grids.mkdir()
        sample_grids(bundle, grids)
        return frechet(grids, real_list)


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for g, label in (("ema", "averaged G (shipped)"), ("raw", "plain G")):
        pts = sorted((int(r["images_seen"]), float(r["fd"])) for r in rows if r["generator"] == g)
        if pts:
            ax.plot([p[0] / 1000 for p in pts], [p[1] for p in pts], "o-", label=label)
    ax.set_xlabel("images seen (thousands)")
    ax.set_ylabel("FD (ONet features) to 500 val. faces")
    ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=80)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path)
    ap.add_argument("--raw", action="store_true", help="Also score the plain (not averaged) G.")
    ap.add_argument("--plot", type=Path, default=None)
    args = ap.parse_args()
    if not JUDGE.exists():
        sys.exit(f"{JUDGE}: not found (the shared face judge is needed)")
    table = args.run / "fd.csv"
    rows = list(csv.DictReader(table.open())) if table.exists() else []
    done = {(r["checkpoint"], r["generator"]) for r in rows}
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write("\n".join(str(FACES / f"{i:06d}.jpg") for i in range(9001, 9501)))
        real_list = Path(f.name)
    for ckpt in sorted(args.run.glob("checkpoint_epoch_*.pt")):
        for g in ("ema", "raw") if args.raw else ("ema",):
            if (ckpt.name, g) in done:
                continue
            state = load_checkpoint(ckpt)["state"]
            fd = score(ckpt, g == "ema", real_list)
            row = {
                "checkpoint": ckpt.name,
                "generator": g,
                "epoch": state["epoch"],
                "images_seen": state["images_seen"],
                "fd": f"{fd:.2f}",
            }
            rows.append(row)
            print(row, flush=True)
            with table.open("w", newline="") as out:
                w = csv.DictWriter(out, fieldnames=list(row))
                w.writeheader()
                w.writerows(rows)
    if args.plot:
        plot(rows, args.plot)


if __name__ == "__main__":
    main()
