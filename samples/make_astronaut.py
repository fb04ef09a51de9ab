"""Regenerate samples/astronaut/: a real photograph (scikit-image's `data.astronaut()`, NASA, public
domain; stored as a quality-95 JPEG to keep the repository small), its eyes and its mouth
completed through the photo path (YuNet finds the face, the mask is drawn in the face's frame, the
result is pasted back), and pictures of the face region at 100 % zoom (photo pixels, not enlarged):

- PART_before_after.png: masked | completed by the default model;
- with --compare MODEL, also PART_vs_MODEL.png: masked | the default model | MODEL | the photo
  itself (e.g. a 128-px model against the 64-px one; not committed unless MODEL is shipped).

    python samples/make_astronaut.py [--compare runs/celeba128.pt]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data

from completion.bundle import default_model_path, load_model
from completion.complete import Completer
from completion.imageio import load_rgb, save_image

HERE = Path(__file__).resolve().parent / "astronaut"
FACE = (slice(40, 230), slice(150, 300))  # rows, columns around her face, for the pictures
PARTS = ("eyes", "mouth")


def side_by_side(*crops: np.ndarray) -> np.ndarray:
    pad = np.full((crops[0].shape[0], 4, 3), 255, np.uint8)
    out = [crops[0]]
    for c in crops[1:]:
        out += [pad, c]
    return np.concatenate(out, axis=1)


def completions(model_path: Path, photo: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{part: (masked photo, completed photo)}: what `completion complete --image astronaut.jpg
    --mask-type PART --model M` writes, and the photo with its hole painted white."""
    completer = Completer(load_model(model_path))
    out = {}
    for part in PARTS:
        res = completer.complete(photo, part, name="astronaut")
        masked = photo.copy()
        masked[~res.hole_known] = 255
        out[part] = (masked, res.image)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--compare", type=Path, default=None, help="Another model to show beside the default.")
    args = ap.parse_args()
    HERE.mkdir(exist_ok=True)
    Image.fromarray(data.astronaut()).save(HERE / "astronaut.jpg", quality=95)
    photo = load_rgb(HERE / "astronaut.jpg")  # what `completion complete --image` reads
    default = completions(default_model_path(), photo)
    for part, (masked, done) in default.items():
        save_image(HERE / f"{part}_before_after.png", side_by_side(masked[FACE], done[FACE]))
    if args.compare is not None:
        other = completions(args.compare, photo)
        for part in PARTS:
            masked = default[part][0]
            crops = (masked[FACE], default[part][1][FACE], other[part][1][FACE], photo[FACE])
            save_image(HERE / f"{part}_vs_{args.compare.stem}.png", side_by_side(*crops))


if __name__ == "__main__":
    main()
