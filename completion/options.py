"""Every user-facing option, declared once: type (the annotation), default, range or choices, help.

The command line (cli.click_options), the HTTP API's request model (serve.CompleteRequest, and so
/openapi.json) and the dataclasses' own validation (check) are all derived from these fields, so an
option cannot say one thing on the command line and another in the API or the library. Nothing here
names a command: each command picks the dataclass (and group) whose options it takes."""

from __future__ import annotations

import math
from dataclasses import Field, dataclass, field, fields
from typing import Any

from .config import SEED_MAX

PERCEPTUAL = ("log1m", "nonsat")
BLENDS = ("poisson", "opencv", "none")
WEIGHTINGS = ("yeh", "plain")
INITS = ("auto", "random", "encoder")
# "auto" (every command's default) and "bf16" go through device.resolve_precision: bf16 where the
# hardware computes it, fp32 elsewhere, and an explicit bf16 refused where it is only emulated.
PRECISIONS = ("auto", "fp32", "bf16")
DEVICES = ("auto", "cpu", "cuda")
# Standard deviation of a candidate's offset from the encoder's z (benchmarks/candidates.py).
SPREAD_DEFAULT = 0.5
# Each candidate costs a full search: more than this is refused.
SAMPLES_MAX = 64


@dataclass(frozen=True)
class Spec:
    """What a user may set a field to, and what it means."""

    help: str | None = None
    choices: tuple[str, ...] | None = None
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    # A named subset of a dataclass's options ("candidates": samples and spread), for a command
    # that takes only some of them; "" is the rest.
    group: str = ""

    def describe_range(self) -> str:
        """'>= 0', '> 0', 'in [0, 1)' (for messages)."""
        if self.high is None:
            return f"{'>' if self.low_open else '>='} {self.low}"
        return f"in {'(' if self.low_open else '['}{self.low}, {self.high}{')' if self.high_open else ']'}"


def option(
    default: object,
    help: str | None = None,
    *,
    choices: tuple[str, ...] | None = None,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    group: str = "",
) -> Any:  # noqa: ANN401 - a dataclass field, typed by its annotation
    """A dataclass field that users can set (command line, API), with its rules in one place."""
    spec = Spec(help, choices, low, high, low_open, high_open, group)
    return field(default=default, metadata={"option": spec})


def spec_of(f: Field) -> Spec | None:
    return f.metadata.get("option")


def public_fields(cls: type, group: str | None = None) -> list[Field]:
    """The fields of `cls` users can set, in declaration order (only `group`'s when given)."""
    return [f for f in fields(cls) if (s := spec_of(f)) is not None and (group is None or s.group == group)]


def check(obj: object) -> None:
    """ValueError unless every option of the dataclass `obj` is within its declared range or choices
    (None is accepted where it is the default: 'not set')."""
    for f in fields(obj):  # type: ignore[arg-type]
        s = spec_of(f)
        value = getattr(obj, f.name)
        if s is None or (value is None and f.default is None):
            continue
        if s.choices is not None:
            if value not in s.choices:
                raise ValueError(f"{f.name} must be one of {s.choices}")
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{f.name} must be a finite number {s.describe_range()}")
        too_low = s.low is not None and (value <= s.low if s.low_open else value < s.low)
        too_high = s.high is not None and (value >= s.high if s.high_open else value > s.high)
        if too_low or too_high:
            raise ValueError(f"{f.name} must be {s.describe_range()}")


SEED_HELP = "Seed of the random starts, the candidates and random mask types."


# Options that several dataclasses share, declared once (each call is a new field).
def _seed(help: str | None = None) -> Any:  # noqa: ANN401 - a dataclass field
    return option(0, help, low=0, high=SEED_MAX)


def _offset() -> Any:  # noqa: ANN401
    return option(0, "Skip the first N images (sorted).", low=0)


def _limit() -> Any:  # noqa: ANN401
    return option(None, "Use at most N images.", low=1)


def _batch_size(default: int) -> Any:  # noqa: ANN401
    return option(default, low=2)


@dataclass(frozen=True)
class CompletionOptions:
    """Every knob of the optimisation; defaults are the measured best (see README)."""

    # Measured on validation faces (README, "Choices and measurements"): from the encoder's z,
    # 50 steps beat 100 on average over the 11 mask types (+0.3-0.9 dB on half-face masks, at
    # most 0.15 dB worse elsewhere) at half the cost (re-measured for the shipped model). 25 steps
    # at lr 0.025 with Adam's betas (0.7, 0.99) (below) are at or above 50 steps at lr 0.01 with
    # (0.9, 0.999) on every searched mask of three sets of validation faces but for 0.01 dB on one
    # (hole PSNR; SSIM at or above everywhere), at half the cost ("Adam's momentum"). The
    # perceptual term changes no PSNR/SSIM at lam <= 0.1 and costs 1-3 dB at lam = 10 (less with
    # "nonsat"), while D doubles the cost.
    iterations: int = option(25, "Adam steps on z.", low=0)
    # Measured on validation faces (README, "Steps by hole depth"): from the encoder's z, holes
    # as deep as half a face lose 0.2-1.0 dB hole PSNR with every step, while all shallower holes
    # gain from them; the encoder alone fills a deep hole better than the search.
    skip_depth: float = option(
        0.23,
        "Holes at least this deep (mean distance from a hole pixel to the nearest known pixel, as "
        "a share of the face crop's side: half a face is 0.26, a centred half-size box 0.09) keep "
        "the encoder's z, with no search steps. 1: never.",
        low=0,
        high=1,
    )
    lr: float = option(0.025, "Adam's learning rate on z.", low=0, low_open=True)
    # Less momentum than Adam's usual (0.9, 0.999): in a search of a few dozen steps from a good
    # start, a first moment averaged over ~10 steps lags and overshoots (README, "Adam's momentum").
    beta1: float = 0.7
    beta2: float = 0.99
    lam: float = option(0.0, "Weight of the perceptual (discriminator) loss.", low=0)
    perceptual: str = option(
        "nonsat",
        "log1m: log(1 - D(G(z))) as in Yeh et al.; nonsat: -log D(G(z)).",
        choices=PERCEPTUAL,
    )
    weighting: str = option(
        "yeh",
        "yeh: known pixels weighted by the share of hole around them (Yeh et al.); plain: all known "
        "pixels alike.",
        choices=WEIGHTINGS,
    )
    window: int = 7
    restarts: int = option(1, "Independent z per image; the lowest final loss is kept.", low=1)
    blend: str = option(
        "poisson",
        "How G(z*) meets the known pixels: Poisson blending, OpenCV's seamless clone, or pasted as is.",
        choices=BLENDS,
    )
    init: str = option(
        "auto",
        "Starting z: the model's encoder, random, or auto (the encoder when the model has one).",
        choices=INITS,
    )
    precision: str = option(
        # bf16 on CPUs with bf16 units: 1.8x faster per step, hole PSNR within 0.02 dB (README).
        "auto",
        "Arithmetic of G and D during the search (auto: bf16 where the CPU or GPU computes it "
        "natively, else fp32; bf16 is refused where it would be emulated).",
        choices=PRECISIONS,
    )
    seed: int = _seed(SEED_HELP)
    # Early stop: end the search once, for `patience` steps, no image's loss has improved by more
    # than this fraction of its best. 0 runs every iteration.
    early_stop: float = option(
        0.0,
        "Stop once no image's loss improved by this fraction in --patience steps (0: off).",
        low=0,
        high=1,
        high_open=True,
    )
    patience: int = option(10, "Steps without such an improvement that end the search.", low=1)
    # Candidates: `samples` completions per image, candidate k from seed `seed + k`, best loss
    # first. Seed 0 starts from the encoder's own z (the single default completion); any other
    # seed from the encoder's z plus Gaussian noise of standard deviation `spread` drawn from it,
    # so one seed always gives the same candidate. With init="random" the seed draws the whole z.
    samples: int = option(
        1,
        "Candidates: --out gets the lowest-loss one, and candidate k (seed --seed + k) also goes "
        "to OUT_STEM.seedS.png; `--seed S` alone reproduces it.",
        low=1,
        high=SAMPLES_MAX,
        group="candidates",
    )
    spread: float = option(
        SPREAD_DEFAULT,
        "How far candidates start from the encoder's z (std of the noise added for seeds other than 0).",
        low=0,
        group="candidates",
    )

    def __post_init__(self) -> None:
        check(self)


@dataclass
class TrainOptions:
    """A training run (`completion train`); the checkpoint stores these, and a resume reads them."""

    data: str
    out: str
    epochs: int = option(25, low=1)
    batch_size: int = _batch_size(64)
    lr: float = option(2e-4, low=0, low_open=True)
    beta1: float = 0.5
    seed: int = _seed()
    # use files[offset:offset+limit] of the sorted image list
    offset: int = _offset()
    limit: int | None = _limit()
    # one-sided: the real target is 1 - label_smoothing
    label_smoothing: float = option(0.0, low=0, high=0.5)
    device: str = option("auto", choices=DEVICES)
    checkpoint_minutes: float = option(10.0, low=0)
    cache_max_gb: float = 4.0
    progress: bool = True
    channels_last: bool = True
    precision: str = option(
        "auto",
        "bf16: bfloat16 autocast for the networks (~2x faster where the CPU or GPU has bf16 units; "
        "refused where it has none). auto: bf16 where native, else fp32.",
        choices=PRECISIONS,
    )
    ema: bool = option(
        True, "Keep an exponential moving average of G's weights; exported models ship the average."
    )
    keep_every: int = option(
        0, "Also keep RUN/checkpoint_epoch_NNN.pt every N epochs (to compare points of a run).", low=0
    )
    grow_from: str = ""  # a model bundle of half the size whose layers start this one (grow.py)
    fade_images: int = option(
        100_000, "With --grow-from: training images over which the new block fades in.", low=0
    )

    def __post_init__(self) -> None:
        check(self)


@dataclass
class EncoderOptions:
    """Training the encoder (`completion train-encoder`)."""

    data: str
    offset: int = _offset()
    limit: int | None = _limit()
    steps: int = option(3000, low=1)
    batch_size: int = _batch_size(64)
    lr: float = 1e-3
    z_weight: float = 1.0
    seed: int = _seed()
    progress: bool = True
    precision: str = "auto"  # as in training: bf16 autocast only where the hardware has it

    def __post_init__(self) -> None:
        check(self)
