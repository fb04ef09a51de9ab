"""How far a completion moves with its batch: validation faces completed in one batch and each
alone, per Adam setting (oneDNN's kernels sum in another order for another batch size, and the
search carries that rounding along). Prints, per mask, the mean absolute difference over the hole
in grey levels (all faces, and the worst face) and the mean relative difference of the final loss.

A variant is ITERATIONS/LR/BETA1/BETA2.

    python benchmarks/batch_drift.py --n 16 --offset 9100 --variants 40/0.015/0.9/0.999,25/0.025/0.7/0.99
"""

from __future__ import annotations

import numpy as np
from common import complete_in_batches, face_parser, start, validation_faces

from completion.complete import Completer
from completion.evaluate import blank_holes
from completion.masks import make_mask


def main() -> None:
    ap = face_parser(__doc__, 16, "eyes,center,random:0.8", batch_size=16)
    ap.set_defaults(offset=9100)
    ap.add_argument("--variants", default="40/0.015/0.9/0.999,25/0.025/0.7/0.99")
    ap.add_argument("--precision", default="auto")
    args, model = start(ap)
    size = model.config.image_size
    faces = validation_faces(args, model)
    print(f"{len(faces)} faces from #{args.offset + 1}, batches of {args.batch_size}, {args.precision}")
    print("| variant | mask | hole diff, mean | worst face | loss, relative diff |")
    print("|---|---|---:|---:|---:|")
    for variant in args.variants.split(","):
        iterations, lr, beta1, beta2 = variant.split("/")
        c = Completer(model).with_options(
            iterations=int(iterations),
            lr=float(lr),
            beta1=float(beta1),
            beta2=float(beta2),
            precision=args.precision,
        )
        for mt in args.mask_types.split(","):
            knowns = [make_mask(mt, size, size, seed=i) for i in range(len(faces))]
            items = list(zip(blank_holes(faces, knowns), knowns, strict=True))
            batched = complete_in_batches(c, items, args.batch_size)
            diffs, rel = [], []
            for (image, known), b in zip(items, batched, strict=True):
                alone = c.complete(image, known)
                diffs.append(np.abs(alone.image.astype(int) - b.image.astype(int))[~known].mean())
                rel.append(abs(alone.loss - b.loss) / b.loss)
            cells = [variant, mt, f"{np.mean(diffs):.3f}", f"{np.max(diffs):.3f}", f"{np.mean(rel):.4f}"]
            print("| " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
