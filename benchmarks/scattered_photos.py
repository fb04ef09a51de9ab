"""Scattered masks in photos: validation faces taken as photos (not --aligned: YuNet finds the face,
the framer tilts and scales its crop, the view is warped), each mask type drawn in the face's
frame, completed with the default options; hole PSNR over all hole pixels.

The inputs are not blanked: YuNet finds no face once most pixels are blanked. The completion reads
hole pixels only through the image warp's interpolation kernel at known model pixels; compare runs
of two versions (PYTHONPATH=other-checkout) rather than reading the numbers as absolute.

    python benchmarks/scattered_photos.py --n 100 --offset 9000 --mask-types random:0.8,grid:4,lowres:4
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from common import SHARED, face_parser, start

from completion.complete import Completer, CompletionOptions
from completion.errors import CompletionError
from completion.imageio import load_rgb


def main() -> None:
    ap = face_parser(__doc__, 100, "random:0.8,grid:4,lowres:4")
    args, model = start(ap)
    files = sorted(SHARED.glob("*.jpg"))[args.offset : args.offset + args.n]
    c = Completer(model, CompletionOptions())
    photos = []
    for f in files:
        image = load_rgb(f)
        try:
            if len(c.frame_faces(image)) == 1:
                photos.append(image)
        except CompletionError:
            pass
    print(f"{len(photos)} of {len(files)} photos with one face found (from #{args.offset + 1})")
    draw = Completer(model, replace(c.options, iterations=0))
    for mt in args.mask_types.split(","):
        knowns = [r.hole_known for r in draw.complete_many([(p, mt) for p in photos])]
        done = c.complete_many(list(zip(photos, knowns, strict=True)))
        rows = zip(done, photos, knowns, strict=True)
        se = sum(((r.image[~k].astype(float) - p[~k]) ** 2).sum() for r, p, k in rows)
        n = sum(int((~k).sum()) * 3 for k in knowns)
        print(f"| {mt} | {10 * np.log10(255**2 / (se / n)):.2f} |", flush=True)


if __name__ == "__main__":
    main()
