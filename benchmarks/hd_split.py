"""Split celeba_hd by person (people.csv): a training folder of prepared crops, and a folder of
validation photos for hd_judge.py, both as symbolic links (nothing is copied).

  python benchmarks/hd_split.py PREPARED TRAIN_OUT VAL_OUT [--n-val 300]

PREPARED holds `completion prepare`'s crops of celeba_hd/aligned and celeba_hd/crops (PREPARED/aligned,
PREPARED/crops); TRAIN_OUT gets links to those of `train` people. VAL_OUT gets links to n-val
photos of `val` people, spread evenly over the sorted list (aligned and unaligned alike)."""

import argparse
import csv
from pathlib import Path

HD = Path(__file__).resolve().parents[1] / ".." / "shared" / "datasets" / "celeba_hd"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("prepared", type=Path)
    ap.add_argument("train_out", type=Path)
    ap.add_argument("val_out", type=Path)
    ap.add_argument("--n-val", type=int, default=300)
    a = ap.parse_args()
    with (HD / "people.csv").open() as f:
        rows = list(csv.DictReader(f))
    a.train_out.mkdir(parents=True, exist_ok=True)
    n_train = 0
    for r in rows:
        if r["split"] != "train":
            continue
        crop = (a.prepared / r["file"]).with_suffix(".png")
        if crop.exists():
            link = a.train_out / f"{crop.parent.name}_{crop.name}"  # aligned/ and crops/ share numbers
            if not link.exists():
                link.symlink_to(crop.resolve())
            n_train += 1
    val = sorted(r["file"] for r in rows if r["split"] == "val")
    step = max(1, len(val) // a.n_val)
    picked = val[::step][: a.n_val]
    a.val_out.mkdir(parents=True, exist_ok=True)
    for rel in picked:
        link = a.val_out / rel.replace("/", "_")
        if not link.exists():
            link.symlink_to((HD / rel).resolve())
    print(f"{n_train} training crops in {a.train_out}")
    print(f"{len(picked)} of {len(val)} validation photos in {a.val_out}")


if __name__ == "__main__":
    main()
