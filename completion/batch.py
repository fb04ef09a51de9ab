"""Batch completion of a folder: pairing images with masks, sharding, streaming, resuming.

    jobs, failures = pair_files(images_dir, masks_dir)          # sorted by relative path
    report = run_batch(completer, shard(jobs, 0, 1), out_dir, failures=failures)

Masks given as a folder follow IOPaint: the mask of `<images>/a/b/x.jpg` is `<masks>/a/b/x.<ext>`
(any image extension, case-insensitive); every file under the images folder is then an input, so a
photo may be called `x_mask.png`. LaMa's layout applies only when the masks folder is the images
folder: `x_mask*.png` beside `x.png` (such files are then masks, not inputs; several masks for one
image give one output per mask, named after the mask). Outputs go to `<out>/a/b/<stem>.png`.

The folder is streamed: images are loaded a chunk of `batch_size` at a time (the next chunk is
prefetched by a pool of two threads while the current one is optimised, and outputs are saved by
the same pool), so memory holds about three chunks of images whatever the folder size; only the
list of file paths is kept whole (it must be sorted to shard deterministically). Every output is
written atomically (temp file + rename); a rerun skips outputs that exist, and removes temp files
a killed run left behind for its outputs. A bad input is logged in one line and skipped."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from .complete import Completer, Completion
from .errors import CompletionError
from .imageio import (
    join_rel,
    load_gray,
    output_error,
    same_file,
    save_like_source,
    stale_temp_target,
    temp_prefix,
    walk_images,
)
from .inputs import load_pair
from .masks import MaskType
from .text import plural

log = logging.getLogger(__name__)

T = TypeVar("T")
OUTPUT_SUFFIX = ".png"
LAMA_TAG = "_mask"


@dataclass(frozen=True)
class Job:
    """One completion to do: an input image, its mask file (None: the run's shared mask or mask
    type) and the output's path relative to the output folder."""

    image: Path
    rel: str  # the image's path relative to the images folder, posix style
    mask: Path | None
    output: str  # relative output path, posix style


@dataclass(frozen=True)
class Failure:
    """An image that cannot be completed, found before or during the run; or, with status
    "ignored", a path under the images folder that is not an image (named, but not a failure)."""

    image: Path
    rel: str
    error: str
    status: str = "failed"


@dataclass
class BatchReport:
    """What a run did. `failures` lists (relative image path, message)."""

    total: int = 0
    done: int = 0
    skipped_existing: int = 0
    failed: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)
    ignored: int = 0  # paths under the images folder that are not images (files of other kinds, ...)
    ignored_paths: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    report_path: Path | None = None

    def summary(self) -> str:
        rate = f", {self.done / self.seconds:.2f} images/s" if self.done and self.seconds > 0 else ""
        ignored = f"; {plural(self.ignored, 'other path')} ignored" if self.ignored else ""
        return (
            f"{plural(self.total, 'image')}: {self.done} completed, {self.skipped_existing} already done, "
            f"{self.failed} failed{ignored} ({self.seconds:.1f} s{rate})"
        )


# -- finding the work -------------------------------------------------------------------------


def _lama_base(stem: str) -> str | None:
    """'x_mask001' -> 'x' (LaMa takes everything before the last '_mask')."""
    return stem.rsplit(LAMA_TAG, 1)[0] if LAMA_TAG in stem else None


def pair_files(
    images_dir: Path, masks_dir: Path | None = None, exclude: Sequence[Path] = ()
) -> tuple[list[Job], list[Failure]]:
    """Jobs for every image under images_dir and failures for those without a mask, both sorted by
    relative path. Without masks_dir every image becomes a job with mask None (the run's shared
    mask file, mask type or transparency applies). Folders in exclude are not walked."""
    images_dir = Path(images_dir)
    same = masks_dir is not None and os.path.realpath(masks_dir) == os.path.realpath(images_dir)
    excl = list(exclude)
    if masks_dir is not None and not same:
        excl.append(Path(masks_dir))  # a masks folder inside the images folder holds no inputs
    index: dict[tuple[str, str], Path] = {}
    if masks_dir is not None and not same:
        for rel_dir, names in walk_images(Path(masks_dir), exclude):
            for name in names:  # sorted, so the first extension in name order wins
                index.setdefault((rel_dir, Path(name).stem), Path(masks_dir) / rel_dir / name)

    jobs: list[Job] = []
    failures: list[Failure] = []
    others: list[tuple[str, str]] = []
    for rel_dir, names in walk_images(images_dir, excl, others):
        folder = images_dir / rel_dir
        stems = {Path(n).stem for n in names}
        lama: dict[str, list[str]] = {}
        if same:  # LaMa's naming rule only in LaMa's layout: a separate masks folder names no inputs
            for n in names:
                p = Path(n)
                base = _lama_base(p.stem)
                if p.suffix.lower() == ".png" and base is not None and base in stems:
                    lama.setdefault(base, []).append(n)
        lama_files = {n for ms in lama.values() for n in ms}
        for n in names:
            if n in lama_files:
                continue
            stem, rel = Path(n).stem, join_rel(rel_dir, n)
            out = join_rel(rel_dir, stem + OUTPUT_SUFFIX)
            if masks_dir is None:
                jobs.append(Job(folder / n, rel, None, out))
            elif (rel_dir, stem) in index:
                jobs.append(Job(folder / n, rel, index[(rel_dir, stem)], out))
            elif len(lama.get(stem, ())) == 1:
                jobs.append(Job(folder / n, rel, folder / lama[stem][0], out))
            elif stem in lama:
                for m in lama[stem]:
                    jobs.append(
                        Job(folder / n, rel, folder / m, join_rel(rel_dir, Path(m).stem + OUTPUT_SUFFIX))
                    )
            else:
                failures.append(Failure(folder / n, rel, "no mask found"))

    # Two inputs with one output (x.jpg and x.png side by side): the first in path order wins.
    jobs.sort(key=lambda j: (j.rel, j.output))
    owner: dict[str, str] = {}
    kept: list[Job] = []
    for j in jobs:
        first = owner.setdefault(j.output, j.rel)
        if first == j.rel:
            kept.append(j)
        else:
            failures.append(Failure(j.image, j.rel, f"output {j.output} is already the output of {first}"))
    for rel, why in others:
        # Named, not failed: a dangling link, even one named x.png, holds no image (README, Folders).
        failures.append(Failure(images_dir / rel, rel, why, "ignored"))
    failures.sort(key=lambda f: f.rel)
    return kept, failures


def shard(items: Sequence[T], index: int, count: int) -> list[T]:
    """The items whose position satisfies position % count == index: count shards partition the
    list exactly, and every process computes its own share without coordination."""
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"shard {index}/{count}: need 0 <= I < N")
    return list(items[index::count])


def parse_shard(spec: str) -> tuple[int, int]:
    """'I/N' (0-based I) -> (I, N)."""
    i, sep, n = spec.partition("/")
    try:
        index, count = int(i), int(n)
    except ValueError:
        raise ValueError(f"shard {spec!r}: expected I/N, e.g. 0/4") from None
    if not sep or count < 1 or not 0 <= index < count:
        raise ValueError(f"shard {spec!r}: expected I/N with 0 <= I < N, e.g. 0/4")
    return index, count


def shard_from_env(environ: dict[str, str] | None = None) -> tuple[int, int] | None:
    """(RANK, WORLD_SIZE) under torchrun with more than one process, else None.

    Only torchrun's own marker (TORCHELASTIC_RUN_ID, which it sets for every worker) makes RANK
    and WORLD_SIZE count: the two are common names, e.g. left over from a cluster job, and must
    not silently shard a run started by hand."""
    env = os.environ if environ is None else environ
    if "TORCHELASTIC_RUN_ID" not in env:
        if env.get("WORLD_SIZE", "1").strip() not in ("", "0", "1"):
            log.warning("RANK/WORLD_SIZE are set but this is not torchrun: not sharding (use --shard I/N)")
        return None
    try:
        world = int(env.get("WORLD_SIZE", "1"))
        rank = int(env.get("RANK", "0"))
    except ValueError:
        return None
    if world > 1 and 0 <= rank < world:
        return rank, world
    return None


# -- resuming -----------------------------------------------------------------------------------


class _StaleTemps:
    """Temp files (see imageio.temp_prefix) that a killed run left beside its outputs. Each folder
    is listed once; only the temp files of outputs this run owns are removed, and only those that
    are provably abandoned (imageio.stale_temp_target), so runs sharing an output folder never
    touch each other's writes in flight."""

    def __init__(self) -> None:
        self._by_dir: dict[str, dict[str, list[str]]] = {}

    def _list(self, folder: str) -> dict[str, list[str]]:
        if folder not in self._by_dir:
            found: dict[str, list[str]] = {}
            try:
                with os.scandir(folder) as it:
                    for e in it:
                        target = stale_temp_target(Path(folder), e.name)
                        if target is not None:
                            found.setdefault(target, []).append(e.name)
            except OSError:
                pass
            self._by_dir[folder] = found
        return self._by_dir[folder]

    def remove_for(self, output: Path) -> None:
        folder = str(output.parent)
        for n in self._list(folder).pop(output.name, []):
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(folder, n))
                log.info("removed %s left by an interrupted run", os.path.join(folder, n))


class _ReportWriter:
    """Streams the JSON report into a temp file entry by entry and renames it into place at the end,
    so the report costs no memory per image and a reader never sees half of one."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            _StaleTemps().remove_for(self.path)
            fd, self.tmp = tempfile.mkstemp(
                prefix=temp_prefix(self.path), suffix=".tmp", dir=self.path.parent
            )
        except OSError as e:
            raise output_error(self.path, e) from e
        self.f = os.fdopen(fd, "w", encoding="utf-8")
        self.f.write('{"images": [')
        self.first = True

    def add(self, entry: dict[str, Any]) -> None:
        try:
            self.f.write(("\n  " if self.first else ",\n  ") + json.dumps(entry))
        except OSError as e:  # e.g. the disk is full: the run stops, the temp file goes
            self.abort()
            raise output_error(self.path, e) from e
        self.first = False

    def finish(self, totals: dict[str, Any]) -> None:
        tail = "".join(f",\n{json.dumps(k)}: {json.dumps(v)}" for k, v in totals.items())
        try:
            self.f.write("\n]" + tail + "\n}\n")
            self.f.close()
            os.replace(self.tmp, self.path)
        except OSError as e:
            self.abort()
            raise output_error(self.path, e) from e

    def abort(self) -> None:
        with contextlib.suppress(OSError):
            self.f.close()
        with contextlib.suppress(OSError):
            os.unlink(self.tmp)


# -- running ------------------------------------------------------------------------------------


def _chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _message(job_image: Path, e: BaseException) -> str:
    """The error's text without a leading '<image path>: ' (the log line names the image)."""
    msg = str(e)
    prefix = f"{job_image}: "
    return for_batch(msg[len(prefix) :] if msg.startswith(prefix) else msg)


def for_batch(msg: str) -> str:
    """The library's advice names `complete`'s --box, which `batch` has not: point there instead."""
    return re.sub(r"--box( x,y,w,h)?", "`completion complete --box x,y,w,h` on that image", msg)


@dataclass
class _Run:
    """Counters, report and progress bar of one run_batch call."""

    stats: BatchReport
    writer: _ReportWriter | None
    bar: Any = None
    aligned: bool = False  # see Completer.complete_many

    def record(
        self,
        rel: str,
        status: str,
        output: Path | None = None,
        error: str | None = None,
        loss: float | None = None,
        seconds: float | None = None,
        image: Path | None = None,
    ) -> None:
        s = self.stats
        if status == "ignored":
            s.ignored += 1
            s.ignored_paths.append((rel, error or ""))
            log.info("ignored %s: %s", image if image is not None else rel, error)
            if self.writer is not None:
                self.writer.add({"image": rel, "output": None, "status": status, "error": error})
            return
        s.total += 1
        if status == "done":
            s.done += 1
        elif status == "exists":
            s.skipped_existing += 1
        else:
            s.failed += 1
            s.failures.append((rel, error or ""))
            log.warning("skipped %s: %s", image if image is not None else rel, error)
        if self.writer is not None:
            self.writer.add({
                "image": rel, "output": None if output is None else str(output), "status": status,
                "error": error, "loss": loss, "seconds": None if seconds is None else round(seconds, 4),
            })  # fmt: skip
        if self.bar is not None and status != "exists":
            self.bar.update(1)
            self.bar.set_postfix(failed=s.failed, refresh=False)


def run_batch(
    completer: Completer,
    jobs: Iterable[Job],
    out_dir: Path,
    batch_size: int = 16,
    overwrite: bool = False,
    *,
    mask: Path | None = None,
    mask_type: MaskType | str | None = None,
    convention: str = "white-hole",
    failures: Iterable[Failure] = (),
    report: Path | None = None,
    progress: bool = True,
    aligned: bool = False,
) -> BatchReport:
    """Complete every job into out_dir, batch_size images per optimisation batch.

    Images at the model's size, or all with aligned=True, use the canonical crop; other photos
    have their face found and the completion pasted back (see Completer.complete_many).

    A job without its own mask uses `mask` (a file), else `mask_type`, else the image's
    transparency. Failures found while pairing are reported as such. Bad inputs are logged, skipped
    and counted; the report (when a path is given) is written also when some fail."""
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    if mask is not None:
        load_gray(Path(mask))  # one unreadable shared mask is the run's error, not every image's
    mask_type = None if mask_type is None else MaskType.of(mask_type)  # parsed once, not per image
    out_dir = Path(out_dir)
    start = time.perf_counter()
    run = _Run(
        BatchReport(report_path=report),
        _ReportWriter(report) if report is not None else None,
        aligned=aligned,
    )
    try:
        for f in failures:
            run.record(f.rel, f.status, error=f.error, image=f.image)

        pending = _pending(jobs, out_dir, overwrite, mask, run)
        if run.stats.skipped_existing:
            log.info(
                "%d outputs exist already: skipped (--overwrite redoes them)", run.stats.skipped_existing
            )

        def load(job: Job) -> tuple[np.ndarray, np.ndarray | MaskType]:
            own = job.mask is not None
            return load_pair(job.image, job.mask if own else mask, None if own else mask_type, convention)

        def save(job: Job, out: Path, res: Completion) -> None:
            # A hole from a mask or mask type leaves a transparent input its transparency
            # (imageio.keep_alpha); without either, the transparency was the hole.
            given = job.mask is not None or mask is not None or mask_type is not None
            save_like_source(out, res.image, job.image, known=res.hole_known if given else None)

        with (
            logging_redirect_tqdm(),
            tqdm(
                total=len(pending), desc="batch", unit="img", disable=not progress, dynamic_ncols=True
            ) as bar,
        ):
            run.bar = bar
            bar.set_postfix(failed=run.stats.failed, refresh=False)
            pool = ThreadPoolExecutor(2, thread_name_prefix="batch-io")
            try:
                _process(completer, pending, batch_size, pool, load, save, run)
            finally:
                pool.shutdown(wait=True, cancel_futures=True)
    except BaseException:
        if run.writer is not None:
            run.writer.abort()
        raise
    s = run.stats
    s.seconds = time.perf_counter() - start
    if run.writer is not None:
        run.writer.finish({
            "total": s.total, "done": s.done, "skipped_existing": s.skipped_existing, "failed": s.failed,
            "ignored": s.ignored, "seconds": round(s.seconds, 3),
        })  # fmt: skip
    return s


def _pending(
    jobs: Iterable[Job], out_dir: Path, overwrite: bool, mask: Path | None, run: _Run
) -> list[tuple[Job, Path]]:
    """The jobs to run, each with its output path; outputs that exist are skipped (or redone with
    overwrite), an output that is an input file fails, and temporary files of an interrupted run
    are removed."""
    stale = _StaleTemps()
    pending: list[tuple[Job, Path]] = []
    for job in jobs:
        out = out_dir / job.output
        stale.remove_for(out)
        if out.exists():
            if same_file(out, job.image) or same_file(out, job.mask or mask):
                run.record(job.rel, "failed", error=f"output {out} is an input file", image=job.image)
            elif overwrite:
                pending.append((job, out))
            else:
                run.record(job.rel, "exists", output=out)
        else:
            pending.append((job, out))
    return pending


def _process(completer, pending, batch_size, pool, load, save, run: _Run) -> None:  # noqa: ANN001
    """The pipeline: load chunk k+1 and save chunk k-1 on the pool while chunk k is optimised."""
    chunks = _chunks(pending, batch_size)
    loads = [(job, out, pool.submit(load, job)) for job, out in next(chunks, [])]
    saves: list[tuple[Job, Path, float, float, Future]] = []
    while loads:
        items = []
        for job, out, fut in loads:
            try:
                items.append((job, out, *fut.result()))
            except CompletionError as e:
                run.record(job.rel, "failed", error=_message(job.image, e), image=job.image)
        loads = [(job, out, pool.submit(load, job)) for job, out in next(chunks, [])]
        if items:
            t0 = time.perf_counter()
            results = _complete(completer, items, run)
            per_image = (time.perf_counter() - t0) / len(items)
        else:
            results, per_image = [], 0.0
        _collect(saves, run)
        saves = [
            (job, out, float(res.loss), per_image, pool.submit(save, job, out, res))
            for job, out, res in results
        ]
        del items, results
    _collect(saves, run)


def _complete(completer: Completer, items: list, run: _Run) -> list[tuple[Job, Path, Completion]]:
    """Complete a chunk in one tensor batch; if that fails, each image alone, so one bad item
    cannot take the others with it."""
    try:
        res = completer.complete_many(
            [(img, known) for _, _, img, known in items],
            aligned=run.aligned,
            names=[str(job.image) for job, _, _, _ in items],
        )
        return [(job, out, r) for (job, out, _, _), r in zip(items, res, strict=True)]
    except CompletionError as e:
        if len(items) == 1:
            job = items[0][0]
            run.record(job.rel, "failed", error=_message(job.image, e), image=job.image)
            return []
    done = []
    for job, out, img, known in items:
        try:
            one = completer.complete_many([(img, known)], aligned=run.aligned, names=[str(job.image)])
            done.append((job, out, one[0]))
        except CompletionError as e:
            run.record(job.rel, "failed", error=_message(job.image, e), image=job.image)
    return done


def _collect(saves: list, run: _Run) -> None:
    for job, out, loss, seconds, fut in saves:
        try:
            fut.result()
        except CompletionError as e:
            run.record(job.rel, "failed", error=for_batch(str(e)), image=job.image)
        else:
            run.record(job.rel, "done", output=out, loss=loss, seconds=seconds)
