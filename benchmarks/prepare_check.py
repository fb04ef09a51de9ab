"""Does `completion prepare` crop aligned photos where CelebA's own canonical crop is?

  python benchmarks/prepare_check.py [--n 300] [--picture /tmp/prepare_check.png]

For the first N aligned celeba_hd photos of validation people (178x218; canonical crop: the centred
square of side 0.72 x 178 = 128 px), the crop `prepare` takes (faces.detect_faces, the framer,
prepare.choose_face) is compared with the canonical one: centre error and side error as a share
of the side, angle error in degrees, and the mean absolute difference of the two 128-px crops in
grey levels. --picture writes canonical / prepared pairs side by side, to look at (it shows
CelebA faces: never commit it)."""

import argparse
import csv
import math
from pathlib import Path

import numpy as np
from PIL import Image

from completion.faces import detect_faces
from completion.imageio import load_rgb
from completion.photo import Framing, crop_to_model
from completion.prepare import choose_face

HD = Path(__file__).resolve().parents[1] / ".." / "shared" / "datasets" / "celeba_hd"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--picture", type=Path, default=None)
    a = ap.parse_args()
    with (HD / "people.csv").open() as f:
        files = [
            r["file"] for r in csv.DictReader(f) if r["split"] == "val" and r["file"].startswith("aligned/")
        ]
    files = sorted(files)[: a.n]
    centre, side, angle, diff, missed, pairs = [], [], [], [], 0, []
    for rel in files:
        rgb = load_rgb(HD / rel)
        ref = Framing.canonical(rgb.shape[1], rgb.shape[0], 128, "center:0.72")
        face, _ = choose_face(detect_faces(rgb), 128)
        if face is None:
            missed += 1
            continue
        got = face.framing(128)
        centre.append(math.dist((got.cx, got.cy), (ref.cx, ref.cy)) / ref.width)
        side.append(abs(got.width / ref.width - 1))
        angle.append(abs(got.angle))
        a_img, b_img = crop_to_model(rgb, ref), crop_to_model(rgb, got)
        diff.append(np.abs(a_img.astype(float) - b_img).mean())
        if len(pairs) < 16:
            pairs.append(np.concatenate([a_img, b_img], 1))
    pct = lambda v: f"mean {100 * np.mean(v):.2f} %, median {100 * np.median(v):.2f} %"  # noqa: E731
    print(f"{len(files)} aligned validation photos, {missed} without a single face")
    print(f"centre error: {pct(centre)}; side error: {pct(side)}")
    print(
        f"angle error: mean {np.mean(angle):.2f} deg; crop difference: mean {np.mean(diff):.1f} grey levels"
    )
    if a.picture and pairs:
        rows = [np.concatenate(pairs[i : i + 4], 1) for i in range(0, len(pairs) - len(pairs) % 4, 4)]
        Image.fromarray(np.concatenate(rows, 0)).save(a.picture)


if __name__ == "__main__":
    main()
