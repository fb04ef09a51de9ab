"""Completed photos at full resolution, judged from outside (../shared/tools/hd_judge.py).

  python benchmarks/hd_eval.py SET OUT [--model M ...] [--kinds eyes,mouth,nose,strokes] [--cv2]

SET is what `hd_judge.py masks PHOTOS SET` wrote (SET/gt, SET/masks/KIND). Each model completes
every photo of SET/gt with each kind's masks through the photo path, with default options
(`completion batch --masks`), into OUT/<model stem>/<kind>; --cv2 adds OpenCV's Telea and NS.
hd_judge.py then scores each, and a table is printed (hole PSNR / local SSIM / sharp / id).

The judge needs dlib: JUDGE_PYTHON names a Python that has dlib-bin, face-recognition-models and
scikit-image (default: this one)."""

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HD_JUDGE = REPO / ".." / "shared" / "tools" / "hd_judge.py"


def judge(*args: str) -> str:
    py = os.environ.get("JUDGE_PYTHON", sys.executable)
    return subprocess.run(
        [py, str(HD_JUDGE), *args], check=True, capture_output=True, text=True
    ).stdout.strip()


def parse(line: str) -> dict[str, float]:
    return {k: float(v) for k, v in (f.split("=") for f in line.split())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("set", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--model", action="append", default=[], help="Model bundle (repeat); default: shipped.")
    ap.add_argument("--kinds", default="eyes,mouth,nose,strokes")
    ap.add_argument("--cv2", action="store_true", help="Also score OpenCV's Telea and NS.")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--extra", default="", help="More `completion batch` options, e.g. '--iterations 0'.")
    a = ap.parse_args()
    rows = []
    for kind in a.kinds.split(","):
        for model in a.model or [""]:
            name = Path(model).stem if model else "shipped"
            res = a.out / name / kind
            cmd = [
                str(Path(sys.executable).parent / "completion"),
                "-q",
                "batch",
                "--images",
                str(a.set / "gt"),
            ]
            cmd += ["--masks", str(a.set / "masks" / kind), "--out", str(res), "--no-progress"]
            cmd += ["--model", model] if model else []
            cmd += ["--threads", str(a.threads)] if a.threads else []
            cmd += a.extra.split()
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True)
            secs = time.perf_counter() - t0
            rows.append((kind, name, parse(judge("score", str(a.set), kind, str(res))), secs))
            print(kind, name, rows[-1][2], f"{secs:.0f} s", flush=True)
        if a.cv2:
            for method in ("telea", "ns"):
                res = a.out / method / kind
                rows.append(
                    (kind, method, parse(judge("score", str(a.set), kind, str(res), "--cv2", method)), 0)
                )
                print(kind, method, rows[-1][2], flush=True)
    print("\n| mask | method | n | hole PSNR | SSIM | sharp | id | same | seconds |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for kind, name, r, secs in rows:
        print(
            f"| {kind} | {name} | {r['n']:.0f} | {r['psnr_hole']:.2f} | {r['ssim_local']:.3f} | "
            f"{r['sharp']:.2f} | {r['id']:.3f} | {r['same']:.3f} | {secs:.0f} |"
        )


if __name__ == "__main__":
    main()
