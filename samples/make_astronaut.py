"""Regenerate samples/astronaut/: a real photograph (scikit-image's `data.astronaut()`, NASA, public
domain; stored as a quality-95 JPEG to keep the repository small), its eyes and its mouth
completed by the shipped model through the photo path (YuNet finds the face, the mask is drawn
in the face's frame, the result is pasted back), and a picture of each: the face region
masked | completed (the full-size outputs are not kept).

    python samples/make_astronaut.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data

from completion.bundle import default_model_path, load_model
from completion.complete import Completer
from completion.imageio import load_rgb, save_image

HERE = Path(__file__).resolve().parent / "astronaut"
FACE = (slice(40, 230), slice(150, 300))  # rows, columns around her face, for the pictures


def main() -> None:
    HERE.mkdir(exist_ok=True)
    Image.fromarray(data.astronaut()).save(HERE / "astronaut.jpg", quality=95)
    photo = load_rgb(HERE / "astronaut.jpg")  # what `completion complete --image` reads
    completer = Completer(load_model(default_model_path()))
    for part in ("eyes", "mouth"):
        # What `completion complete --image astronaut.jpg --mask-type PART --out X.png` writes.
        res = completer.complete(photo, part, name="astronaut")
        done = res.image
        masked = photo.copy()
        masked[~res.hole_known] = 255
        pad = np.full((FACE[0].stop - FACE[0].start, 4, 3), 255, np.uint8)
        save_image(HERE / f"{part}_before_after.png", np.concatenate([masked[FACE], pad, done[FACE]], axis=1))


if __name__ == "__main__":
    main()
