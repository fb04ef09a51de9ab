"""One face on a quiet machine and beside another torch job: the API (a warm server) and a cold
`completion complete`, each at the default threads (the cores other processes leave free).

Phases: quiet; beside a matrix-multiply loop at torch's default threads; beside a second
completion job (a batch of faces at its own default threads). In each, after the competitor has
run for --settle seconds, it times --n API requests (a 64x64 face, hole over its centre) and --n
cold CLI runs, and `import torch` alone; it prints the medians and their ratios to the quiet phase.
With --rounds R the phases run R times in turn, so that a drift of the CPU's speed (tens of
percent within minutes on shared machines) falls on every phase alike; medians are over all rounds.

    python benchmarks/contention.py --n 5 [--rounds 3] [--model celeba64] [--threads 0]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from serve_common import REPO, face64, png, post, serving

MATMUL = "import torch\na = torch.randn(1024, 1024)\nwhile True:\n    a @ a\n"


def batch_job(tmp: Path) -> list[str]:
    """A long completion job: the bundled faces, many times over, 200 steps each (outputs redone in
    every round)."""
    faces = tmp / "faces"
    if faces.exists():  # made by an earlier round
        return _batch_command(faces, tmp)
    faces.mkdir()
    for i in range(16):
        for src in sorted((REPO / "samples" / "faces").glob("*.png")):
            (faces / f"{i:02d}_{src.name}").write_bytes(src.read_bytes())
    return _batch_command(faces, tmp)


def _batch_command(faces: Path, tmp: Path) -> list[str]:
    return [sys.executable, "-m", "completion", "-q", "batch", "--images", str(faces), "--mask-type",
            "center", "--iterations", "200", "--out", str(tmp / "batch_out"), "--overwrite",
            "--no-progress"]  # fmt: skip


def timed(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO)
    return time.perf_counter() - t0


def measure(url: str, n: int, cli: list[str]) -> dict[str, list[float]]:
    image, hole = face64()
    files = {"image": png(image), "mask": png(hole)}
    api = []
    for _ in range(n):
        t0 = time.perf_counter()
        status, _, body = post(url + "/api/complete", files, {})
        api.append(time.perf_counter() - t0)
        assert status == 200, body[:200]
    cold = [timed(cli) for _ in range(n)]
    torch_import = [timed([sys.executable, "-c", "import torch"]) for _ in range(n)]
    return {"api": api, "cli": cold, "torch": torch_import}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=5)
    ap.add_argument("--settle", type=float, default=3.0)
    ap.add_argument("--threads", type=int, default=0, help="--threads of the server and the CLI (0: auto)")
    ap.add_argument("--model", default=None)
    ap.add_argument("--phases", default="quiet,matmul,completion")
    ap.add_argument("--rounds", type=int, default=1, help="run the phases this many times, in turn")
    args = ap.parse_args()
    model = ["--model", args.model] if args.model else []
    samples: dict[str, dict[str, list[float]]] = {}
    with serving(*model, threads=args.threads) as (_, url), tempfile.TemporaryDirectory() as tmp:
        out = str(Path(tmp) / "out.png")
        cli = [sys.executable, "-m", "completion", "complete", *model, "--image",
               str(REPO / "samples" / "faces" / "face_01.png"), "--mask-type", "center", "--out", out,
               "--threads", str(args.threads)]  # fmt: skip
        measure(url, 2, cli)  # warm the server and the file cache
        for phase in [p for _ in range(args.rounds) for p in args.phases.split(",")]:
            competitor = None
            if phase == "matmul":
                competitor = subprocess.Popen([sys.executable, "-c", MATMUL])
            elif phase == "completion":
                competitor = subprocess.Popen(batch_job(Path(tmp)), cwd=REPO)
            try:
                time.sleep(args.settle if competitor else 0)
                for key, times in measure(url, args.n, cli).items():
                    samples.setdefault(phase, {}).setdefault(key, []).extend(times)
            finally:
                if competitor is not None:
                    competitor.kill()
                    competitor.wait()
    rows = {phase: {k: statistics.median(v) for k, v in r.items()} for phase, r in samples.items()}
    quiet = rows.get("quiet")
    print("| phase | API one face, s | × quiet | cold CLI, s | × quiet | import torch, s | CLI / import |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for phase, r in rows.items():
        qa = f"{r['api'] / quiet['api']:.2f}×" if quiet else "-"
        qc = f"{r['cli'] / quiet['cli']:.2f}×" if quiet else "-"
        ratio = r["cli"] / r["torch"]
        print(f"| {phase} | {r['api']:.3f} | {qa} | {r['cli']:.2f} | {qc} | {r['torch']:.2f} | {ratio:.2f} |")


if __name__ == "__main__":
    main()
