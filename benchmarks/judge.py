"""Face probability and landmark shift of completed validation faces, by the shared face judge.

Each validation face (CelebA aligned, 89x109) gets a mask of each type drawn in its canonical crop
exactly as `completion evaluate` draws it (face i, seed i), its hole blanked, and is completed the
way `complete --aligned` completes it. The completed images are written under a temporary folder
by file name and handed, with the original faces as ground truth, to
`face_judge.py judge GT RESULTS` (ONet's face probability, and the mean shift of its five
landmarks in % of the side).

    python benchmarks/judge.py [--model M] [--n 500] [--mask-types center,left] [--threads 2]

The judge measures only: nothing here feeds back into training or any default.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

from common import SHARED, complete_in_batches, face_judge, face_parser, start, validation_files

from completion.complete import Completer
from completion.evaluate import blank_holes, load_images
from completion.imageio import save_image
from completion.photo import Framing, draw_mask_type


def main() -> None:
    ap = face_parser(__doc__, 500, "center,left")
    args, model = start(ap)
    completer = Completer(model)
    files = validation_files(args)
    faces = load_images(files)
    size, crop = model.config.image_size, model.config.crop
    framings = [Framing.aligned(f.shape[1], f.shape[0], size, crop) for f in faces]
    print(f"{args.model}: {len(faces)} validation faces from #{args.offset + 1}")
    for mask_type in args.mask_types.split(","):
        knowns = [
            draw_mask_type(mask_type, [fr], f.shape[0], f.shape[1], seed=i)
            for i, (f, fr) in enumerate(zip(faces, framings, strict=True))
        ]
        inputs = blank_holes(faces, knowns)
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp)
            items = list(zip(inputs, knowns, strict=True))
            for f, done in zip(
                files, complete_in_batches(completer, items, args.batch_size, aligned=True), strict=True
            ):
                save_image(out / f"{f.stem}.png", done.image)
            result = face_judge("judge", str(SHARED), str(out))
        found = re.search(r"n=(\d+) face_prob=([\d.]+) landmark_err_pct=([\d.]+)", result)
        print(f"| {mask_type} | {found.group(1)} | {found.group(2)} | {found.group(3)} |", flush=True)


if __name__ == "__main__":
    main()
