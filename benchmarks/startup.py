"""Start-up cost of a one-face `completion complete`, against importing torch alone.

Each repetition starts fresh processes, alternately `python -c "import torch"` and
`completion complete --image samples/faces/face_01.png --mask-type center --out OUT` (shipped
model, default options), and takes wall-clock times; the medians and their ratio are printed.
The target (issue 15) is a ratio of at most 1.6.

    python benchmarks/startup.py [--repeats 5] [--threads 0]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def timed(cmd: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0, help="--threads for complete (0: torch's default)")
    args = ap.parse_args()
    env = dict(os.environ)
    completion = [sys.executable, "-m", "completion"]
    with tempfile.TemporaryDirectory() as tmp:
        out = str(Path(tmp) / "out.png")
        cmd = [*completion, "complete", "--image", str(REPO / "samples" / "faces" / "face_01.png"),
               "--mask-type", "center", "--out", out, "--threads", str(args.threads)]  # fmt: skip
        torch_only = [sys.executable, "-c", "import torch"]
        timed(torch_only, env)  # one unmeasured round: file-system caches as for every later one
        timed(cmd, env)
        t_torch, t_cli = [], []
        for _ in range(args.repeats):
            t_torch.append(timed(torch_only, env))
            t_cli.append(timed(cmd, env))
    a, b = statistics.median(t_torch), statistics.median(t_cli)
    print(f"python -c 'import torch':        median {a:.2f} s  ({', '.join(f'{t:.2f}' for t in t_torch)})")
    print(f"completion complete (one face):  median {b:.2f} s  ({', '.join(f'{t:.2f}' for t in t_cli)})")
    print(f"ratio: {b / a:.2f} (target <= 1.6)")


if __name__ == "__main__":
    main()
