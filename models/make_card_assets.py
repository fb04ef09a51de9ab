"""Regenerate the model card's pictures from the shipped bundle: the training-loss plot (from the
history stored in the bundle's metadata), a grid of 64 generated faces, and failure cases: the
worst completions (hole PSNR) of 64 generated faces under each of a few masks, shown on generated
faces only (no CelebA image may be committed). The FD curve comes from benchmarks/fd_curve.py.

    pip install matplotlib   # only this script needs it
    python models/make_card_assets.py [--model completion/weights/celeba64.pt]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from completion.bundle import default_model_path, load_model  # noqa: E402
from completion.complete import Completer  # noqa: E402
from completion.grid import save_grid, to_uint8  # noqa: E402
from completion.imageio import save_image  # noqa: E402
from completion.masks import make_mask  # noqa: E402
from completion.metrics import psnr  # noqa: E402

FAILURE_MASKS = ("left", "center", "eyes", "lowres:4")


def failures(model, n: int = 64, worst: int = 4) -> np.ndarray:  # noqa: ANN001
    """Rows: mask types; per face: masked | completed | truth, the `worst` faces by hole PSNR."""
    size = model.config.image_size
    z = torch.rand(n, model.config.nz, generator=torch.Generator().manual_seed(1234)) * 2 - 1
    with torch.no_grad():
        faces = list(to_uint8(model.generator(z)))
    completer = Completer(model)
    pad = np.full((size, 2, 3), 255, np.uint8)
    rows = []
    for t in FAILURE_MASKS:
        known = make_mask(t, size, size, seed=0)
        blanked = [np.where(known[..., None], f, 0).astype(np.uint8) for f in faces]
        done = completer.complete_many([(b, known) for b in blanked])
        scores = [psnr(f, d.image, ~known) for f, d in zip(faces, done, strict=True)]
        cells = []
        for i in np.argsort(scores)[:worst]:
            masked = faces[i].copy()
            masked[~known] = 255
            cells += [masked, done[i].image, faces[i], pad, pad]
        rows.append(np.concatenate(cells[:-2], axis=1))
        rows.append(np.full((4, rows[-1].shape[1], 3), 255, np.uint8))
    return np.concatenate(rows[:-1], axis=0)


HERE = Path(__file__).resolve().parent


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path, default=default_model_path())
    args = ap.parse_args()
    model = load_model(args.model)
    h = model.meta["history"]
    epochs = [i / model.meta["image_count"] for i in h["images"]]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.5))
    a.plot(epochs, h["loss_d"], label="D loss")
    a.plot(epochs, h["loss_g"], label="G loss")
    a.set_xlabel("epoch")
    a.legend()
    b.plot(epochs, h["d_x"], label="D(x)")
    b.plot(epochs, h["d_gz"], label="D(G(z))")
    b.set_xlabel("epoch")
    b.set_ylim(0, 1)
    b.legend()
    fig.tight_layout()
    fig.savefig(HERE / "training_losses.png", dpi=80)
    z = torch.rand(64, model.config.nz, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        save_grid(HERE / "samples.png", model.generator(z))
    save_image(HERE / "failures.png", failures(model))


if __name__ == "__main__":
    main()
