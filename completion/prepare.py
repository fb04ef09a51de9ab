"""`completion prepare`: turn a folder of face photos into a training folder of canonical crops.

Each photo's face is found and framed as completion frames it (faces.detect_faces: YuNet and the
framer), then cut to the model's S x S crop and written as PNG under the same relative path. A
photo is rejected, counted and named (in OUT/rejected.tsv) when it cannot be read, shows no face,
shows several faces of similar size, shows a face whose crop is smaller than S photo pixels (it
would be enlarged, i.e. soft), or whose crop leaves the photo by more than EDGE_MAX of its area.

Resumable: photos whose crop exists are not read again, and rejected.tsv is read back, so a second
run (after Ctrl-C, or with new photos added) does only the new work."""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .config import parse_crop
from .errors import ImageError
from .faces import Face, detect_faces
from .imageio import list_images, load_rgb, save_image
from .photo import Framing, crop_to_model

log = logging.getLogger(__name__)

REJECTED = "rejected.tsv"
# A second face whose crop is at least this share of the largest one's side makes the photo
# ambiguous (which person is it?); smaller ones are faces in the background and are ignored.
SECOND_FACE_MAX = 0.5
# Crop area allowed outside the photo: the part outside is filled by repeating the edge pixels,
# which a generator would learn as smeared borders.
EDGE_MAX = 0.05
REASONS = ("unreadable", "no face", "several faces", "face too small", "face at the edge")


@dataclass
class PrepareReport:
    written: int = 0
    kept: int = 0  # crops already there from an earlier run
    rejected: dict[str, list[str]] = field(default_factory=lambda: {r: [] for r in REASONS})
    sides: list[float] = field(default_factory=list)  # crop side in photo px of each written crop

    @property
    def n_rejected(self) -> int:
        return sum(len(v) for v in self.rejected.values())


def outside_share(framing: Framing, width: int, height: int, grid: int = 32) -> float:
    """Share of the crop's area that lies outside a width x height photo (sampled on a grid)."""
    u = (np.arange(grid) + 0.5) / grid * framing.size - 0.5
    pts = framing.to_photo(np.stack(np.meshgrid(u, u), -1).reshape(-1, 2)) + 0.5  # edge coordinates
    inside = (pts[:, 0] >= 0) & (pts[:, 0] <= width) & (pts[:, 1] >= 0) & (pts[:, 1] <= height)
    return 1.0 - float(inside.mean())


def choose_face(faces: list[Face], size: int) -> tuple[Face | None, str | None]:
    """The subject among detected faces (largest first), or None and the reason."""
    if not faces:
        return None, "no face"
    sides = [f.framing(size).width for f in faces]
    if len(faces) > 1 and sides[1] >= SECOND_FACE_MAX * sides[0]:
        return None, "several faces"
    return faces[0], None


def frame_photo(
    rgb: np.ndarray, size: int, min_side: float, aligned: str | None
) -> tuple[Framing | None, str]:
    """The crop of one photo and '' or (None, why not). aligned: the crop spec of an already
    aligned photo (its canonical crop is taken; no detection)."""
    h, w = rgb.shape[:2]
    if aligned is not None:
        framing = Framing.canonical(w, h, size, aligned)
    else:
        face, why = choose_face(detect_faces(rgb), size)
        if face is None:
            return None, why or ""
        framing = face.framing(size)
    if framing.width < min_side:
        return None, f"face too small: crop {framing.width:.0f} px < {min_side:.0f}"
    outside = outside_share(framing, w, h)
    if outside > EDGE_MAX:
        return None, f"face at the edge: {outside:.0%} of the crop outside"
    return framing, ""


def _read_rejected(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    with path.open(newline="") as f:
        return {row[0]: row[1] for row in csv.reader(f, delimiter="\t") if len(row) == 2}


def prepare_folder(
    src: Path,
    out: Path,
    size: int = 128,
    min_side: float | None = None,
    aligned: str | None = None,
    progress: bool = True,
) -> PrepareReport:
    """Write OUT/REL/STEM.png, the S x S crop of every photo under src (see the module docstring).

    min_side: smallest crop side in photo pixels (default: size, i.e. never enlarge)."""
    if aligned is not None:
        parse_crop(aligned)  # a bad spec fails before any work
    src, out = Path(src), Path(out)
    min_side = float(size if min_side is None else min_side)
    files = list_images(src)
    rejected_file = out / REJECTED
    before = _read_rejected(rejected_file)
    report = PrepareReport()
    out.mkdir(parents=True, exist_ok=True)
    with (
        rejected_file.open("a", newline="") as rej,
        tqdm(files, desc="prepare", unit="photo", disable=not progress, dynamic_ncols=True) as bar,
    ):
        writer = csv.writer(rej, delimiter="\t", lineterminator="\n")
        for path in bar:
            rel = path.relative_to(src).as_posix()
            target = (out / rel).with_suffix(".png")
            if target.exists():
                report.kept += 1
                continue
            why = before.get(rel)
            if why is None:
                try:
                    rgb = load_rgb(path)
                except ImageError as e:
                    framing, why = None, f"unreadable: {e}"
                else:
                    framing, why = frame_photo(rgb, size, min_side, aligned)
                if framing is not None:
                    save_image(target, crop_to_model(rgb, framing))
                    report.written += 1
                    report.sides.append(framing.width)
                    continue
                writer.writerow([rel, why])
                rej.flush()  # a resumed run must not redo it
            reason = next(r for r in REASONS if why.startswith(r))
            report.rejected[reason].append(rel)
            bar.set_postfix(ok=report.written + report.kept, rejected=report.n_rejected)
    return report


def summary(report: PrepareReport, out: Path) -> list[str]:
    """Lines for the log: what was written and what was rejected, by reason, with examples."""
    lines = [f"{report.written} crops written, {report.kept} already there, {report.n_rejected} rejected"]
    for reason, names in report.rejected.items():
        if names:
            shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
            lines.append(f"  {reason}: {len(names)} ({shown})")
    if report.n_rejected:
        lines.append(f"  every rejected photo and why: {out / REJECTED}")
    if report.sides:
        q = np.percentile(report.sides, [5, 50, 95])
        lines.append(f"crop side in the photos: median {q[1]:.0f} px (5-95 %: {q[0]:.0f}-{q[2]:.0f})")
    return lines
