"""What the benchmarks share: where the validation faces are, and the mask types they cover."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO / ".." / "shared" / "datasets" / "celeba_subset" / "img_align_celeba"
# Every mask type of the completion issue, in the order the README tables use.
MASK_TYPES = "center,left,right,top,bottom,random:0.8,pattern,grid:4,lowres:4,eyes,mouth"
