"""What the benchmarks share: where the validation faces are, and the mask types they cover."""

import statistics
import subprocess
import sys
import time
from pathlib import Path

from completion.masks import ALL_MASK_TYPES

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO / ".." / "shared" / "datasets" / "celeba_subset" / "img_align_celeba"
# The shared outside judge of faces (measuring only; never trained against).
JUDGE = SHARED.parents[2] / "tools" / "face_judge.py"
# Every mask type of the completion issue, in the order the README tables use.
MASK_TYPES = ",".join(ALL_MASK_TYPES)


def median_single_seconds(completer, items) -> float:  # noqa: ANN001
    """Median wall time of one-image `complete()` calls: a single call is at the mercy of the CPU."""
    times = []
    for image, known in items:
        t0 = time.perf_counter()
        completer.complete(image, known)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def face_judge(*args: str) -> str:
    """Run ../shared/tools/face_judge.py with these arguments; its standard output."""
    cmd = [sys.executable, str(JUDGE), *args]
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
