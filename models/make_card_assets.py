"""Regenerate the model card's pictures from the shipped bundle: the training-loss plot (from the
history stored in the bundle's metadata) and a grid of 64 generated faces.

    pip install matplotlib   # only this script needs it
    python models/make_card_assets.py [--model completion/weights/celeba64.pt]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from completion.bundle import default_model_path, load_model  # noqa: E402
from completion.grid import save_grid  # noqa: E402

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


if __name__ == "__main__":
    main()
