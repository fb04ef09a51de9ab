"""Training data: find images, apply the canonical crop, and serve uint8 batches.

Images are decoded once into a uint8 tensor when the set fits in memory (a 64x64 face is 12 KB),
so each epoch costs no decoding; larger sets are streamed through a DataLoader."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from .errors import DataError, ImageError
from .imageio import IMAGE_EXTENSIONS, list_images, load_rgb
from .photo import Framing, crop_to_model
from .text import plural

log = logging.getLogger(__name__)


def canonical_crop(img: np.ndarray, size: int, crop: str) -> np.ndarray:
    """Apply the model's framing: the crop spec, then resize to size x size. The one canonical
    crop (photo.Framing.aligned and photo.crop_to_model), which `complete --aligned` and
    `evaluate` take too: an image already at the model size (a crop made by `prepare`) is taken
    as it is."""
    return crop_to_model(img, Framing.aligned(img.shape[1], img.shape[0], size, crop))


def load_face(path: Path, size: int, crop: str) -> np.ndarray:
    return canonical_crop(load_rgb(path, draft_size=size * 2), size, crop)


# Unreadable training files (and other paths in the data folder) named one per line; beyond
# this many, only counted.
SKIPPED_NAMED = 50


def select_files(data: Path, offset: int = 0, limit: int | None = None) -> list[Path]:
    """Images under data in sorted order, files[offset:offset+limit] (e.g. CelebA's first 9000).

    The folder is walked as `batch` walks it (imageio.walk_images); every other path met is
    named in the log (the first SKIPPED_NAMED) and counted."""
    others: list[tuple[str, str]] = []
    files = list_images(Path(data), others)
    if others:
        log.info("ignored %s under %s:", plural(len(others), "other path"), data)
        for rel, why in others[:SKIPPED_NAMED]:
            log.info("  %s: %s", rel, why)
        if len(others) > SKIPPED_NAMED:
            log.info("  ... and %d more", len(others) - SKIPPED_NAMED)
    files = files[offset : None if limit is None else offset + limit]
    if not files:
        kinds = ", ".join(e.lstrip(".") for e in IMAGE_EXTENSIONS)
        raise DataError(f"{data}: no images found ({kinds})")
    return files


def decode_all(
    files: list[Path],
    size: int,
    crop: str,
    threads: int = 4,
    failures: list[tuple[Path, str]] | None = None,
) -> tuple[torch.Tensor, int]:
    """Decode files to a (N, 3, S, S) uint8 tensor; unreadable ones are skipped and counted, and
    listed in `failures` (path, message) when a list is given."""

    def one(p: Path) -> np.ndarray | None:
        try:
            return load_face(p, size, crop)
        except ImageError as e:
            if failures is not None:
                failures.append((p, str(e)))  # list.append is atomic: safe from the pool's threads
            return None

    with ThreadPoolExecutor(threads) as ex:  # decoders release the GIL
        arrays = list(ex.map(one, files))
    good = [a for a in arrays if a is not None]
    skipped = len(arrays) - len(good)
    if not good:
        raise DataError(f"none of the {plural(len(files), 'image')} could be read")
    return torch.from_numpy(np.stack(good)).permute(0, 3, 1, 2).contiguous(), skipped


class FaceSet(torch.utils.data.Dataset):
    """Streaming dataset for sets too large to cache; unreadable files yield None (dropped)."""

    def __init__(self, files: list[Path], size: int, crop: str) -> None:
        self.files, self.size, self.crop = files, size, crop

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> torch.Tensor | None:
        try:
            return torch.from_numpy(load_face(self.files[i], self.size, self.crop)).permute(2, 0, 1)
        except ImageError as e:
            log.warning("skipped %s", e)  # the message names the file
            return None


def _collate(items: list[torch.Tensor | None]) -> torch.Tensor:
    return torch.stack([x for x in items if x is not None]) if any(x is not None for x in items) else None


class FaceData:
    """uint8 image batches for one rank, in an order fixed by (seed, epoch) so resume is exact."""

    def __init__(
        self,
        files: list[Path],
        size: int,
        crop: str,
        cache_max_bytes: int = 4 << 30,
        workers: int = 2,
    ) -> None:
        self.files, self.size, self.crop, self.workers = files, size, crop, workers
        self.cache: torch.Tensor | None = None
        self.skipped = 0
        self.skipped_files: list[tuple[Path, str]] = []
        if len(files) * 3 * size * size <= cache_max_bytes:
            self.cache, self.skipped = decode_all(files, size, crop, failures=self.skipped_files)
            if self.skipped:
                self.skipped_files.sort()
                log.warning("skipped %s of %d:", plural(self.skipped, "unreadable image"), len(files))
                for _, message in self.skipped_files[:SKIPPED_NAMED]:
                    log.warning("  %s", message)  # the message names the file
                if self.skipped > SKIPPED_NAMED:
                    log.warning("  ... and %d more", self.skipped - SKIPPED_NAMED)

    def __len__(self) -> int:
        return len(self.cache) if self.cache is not None else len(self.files)

    def images(self, idx: list[int]) -> torch.Tensor:
        """(N, 3, S, S) uint8 images by index (decoded here when the set is not cached)."""
        if self.cache is not None:
            return self.cache[idx]
        items = [FaceSet(self.files, self.size, self.crop)[i] for i in idx]
        return torch.stack([x for x in items if x is not None])

    def epoch_order(self, seed: int, epoch: int, rank: int = 0, world: int = 1) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
        perm = torch.randperm(len(self), generator=g)
        per_rank = len(perm) // world  # equal shares keep DDP ranks in step
        return perm[rank * per_rank : (rank + 1) * per_rank]

    def batches(self, order: torch.Tensor, batch_size: int, start: int = 0) -> Iterator[torch.Tensor]:
        """Yield full uint8 batches following order, skipping the first `start` batches."""
        n_batches = len(order) // batch_size
        if self.cache is not None:
            for b in range(start, n_batches):
                yield self.cache[order[b * batch_size : (b + 1) * batch_size]]
            return
        idx = order[start * batch_size : n_batches * batch_size].tolist()
        loader = torch.utils.data.DataLoader(
            FaceSet(self.files, self.size, self.crop),
            batch_size=batch_size,
            sampler=idx,
            num_workers=self.workers,
            collate_fn=_collate,
        )
        for batch in loader:
            if batch is not None:
                yield batch
