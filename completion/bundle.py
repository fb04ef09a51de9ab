"""Model bundles and training checkpoints: plain dicts of tensors and primitives.

Both are read with torch.load(weights_only=True), so a file can never run code. A bundle holds
what completion needs (config, G, D, optional encoder, training metadata); a checkpoint adds
optimiser and RNG state so training resumes exactly."""

from __future__ import annotations

import pickle
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .config import ModelConfig
from .errors import ModelFileError
from .imageio import atomic_write
from .models import Discriminator, Encoder, Generator

FORMAT = "dcgan-completion"
BUNDLE_VERSION = 1
CHECKPOINT_VERSION = 1
# What building networks from a file's dict raises when the dict is well-formed pickle but not the
# layout we wrote (missing keys, wrong types or shapes): a ModelFileError, not a traceback.
# What a file whose sections have the right kinds (check_layout) can still raise when they are used:
# ModelConfig and the options refuse values (ValueError, or TypeError for unknown or missing
# fields), load_state_dict refuses weights of other names or shapes (RuntimeError), an optimiser
# state of another layout (ValueError). Nothing broader, so the loaders' own bugs are not hidden.
MALFORMED = (ValueError, TypeError, RuntimeError)


def check_layout(
    obj: dict[str, Any], path: Path, what: str, tables: tuple[str, ...], weights: tuple[str, ...]
) -> None:
    """Each named section of a loaded file is of the kind it must be before anything reads it: a
    table (dict) or weights (dict of name -> tensor; a None value counts as absent only where the
    section is optional, i.e. not named). A missing or mistyped one is a ModelFileError naming it."""
    for key in tables:
        if not isinstance(obj.get(key), dict):
            raise ModelFileError(f"{path}: {what} has no valid {key!r} section")
    for key in weights:
        sd = obj.get(key)
        if not isinstance(sd, dict) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in sd.items()
        ):
            raise ModelFileError(f"{path}: {what} has no valid {key!r} weights")


@dataclass
class Model:
    """Networks of one trained model, in eval mode, ready for completion."""

    config: ModelConfig
    generator: Generator
    discriminator: Discriminator
    encoder: Encoder | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    def to(self, device: torch.device | str) -> Model:
        for net in (self.generator, self.discriminator, self.encoder):
            if net is not None:
                net.to(device)
        return self

    @property
    def device(self) -> torch.device:
        return next(self.generator.parameters()).device


def load_weights(path: Path, what: str = "model file") -> Any:  # noqa: ANN401 - plain data of any shape
    """torch.load with weights_only=True, every failure turned into one ModelFileError line (the
    one guarded load for model bundles, checkpoints and the framer)."""
    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"{path}: no such {what}")
    if path.is_dir():
        raise ModelFileError(f"{path}: is a folder, expected a .pt file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns in several lines about damaged files
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except PermissionError as e:
        raise ModelFileError(f"{path}: permission denied") from e
    except pickle.UnpicklingError as e:
        # weights_only refuses to build anything but tensors and plain data: name what it refused.
        found = re.search(r"GLOBAL ([\w.]+)|[Uu]nsupported global: ([\w.]+)", str(e))
        if found:
            what = found.group(1) or found.group(2)
            raise ModelFileError(
                f"{path}: refused, the file holds code or objects other than weights ({what}); "
                "nothing was run"
            ) from e
        raise ModelFileError(f"{path}: corrupt or truncated {what}") from e
    except Exception as e:  # damaged bytes also surface as IndexError, KeyError, TypeError, ...
        raise ModelFileError(f"{path}: corrupt or truncated {what}") from e
    return obj


def read_file(path: Path, kind: str) -> dict[str, Any]:
    """A model bundle or checkpoint (load_weights), its format, kind and version checked."""
    path = Path(path)
    obj = load_weights(path)
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise ModelFileError(f"{path}: not a dcgan-completion {kind} file")
    if kind == "model" and obj.get("kind") == "checkpoint":
        raise ModelFileError(
            f"{path}: is a training checkpoint, not a model; make one with "
            f"`completion export {path} --out MODEL.pt`"
        )
    if obj.get("kind") != kind:
        raise ModelFileError(f"{path}: is a {obj.get('kind')} file, expected a {kind} file")
    want = BUNDLE_VERSION if kind == "model" else CHECKPOINT_VERSION
    if obj.get("version") != want:
        raise ModelFileError(
            f"{path}: {kind} format version {obj.get('version')!r} is not supported (expected {want})"
        )
    return obj


def write_file(path: Path, obj: dict[str, Any]) -> None:
    atomic_write(Path(path), lambda tmp: torch.save(obj, tmp))


def _half(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # fp16 halves the shipped file; float32 is restored on load and completion quality is unchanged.
    return {k: v.half() if v.is_floating_point() else v for k, v in sd.items()}


def _float(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.float() if v.is_floating_point() else v for k, v in sd.items()}


def save_model(
    path: Path,
    config: ModelConfig,
    generator: torch.nn.Module,
    discriminator: torch.nn.Module,
    encoder: torch.nn.Module | None = None,
    meta: dict[str, Any] | None = None,
) -> None:
    write_file(
        path,
        {
            "format": FORMAT,
            "kind": "model",
            "version": BUNDLE_VERSION,
            "config": config.to_dict(),
            "generator": _half(generator.state_dict()),
            "discriminator": _half(discriminator.state_dict()),
            "encoder": None if encoder is None else _half(encoder.state_dict()),
            "meta": meta or {},
        },
    )


def load_model(path: Path | str | None, device: str | torch.device = "cpu") -> Model:
    """A model bundle from a file, a shipped model by name, or (None) the default (model_path)."""
    path = model_path(path)
    obj = read_file(path, "model")
    optional = ("encoder",) if obj.get("encoder") is not None else ()
    check_layout(obj, path, "model file", ("config",), ("generator", "discriminator", *optional))
    try:
        cfg = ModelConfig.from_dict(obj["config"])
        g, d = Generator(cfg), Discriminator(cfg)
        g.load_state_dict(_float(obj["generator"]))
        d.load_state_dict(_float(obj["discriminator"]))
        e = None
        if obj.get("encoder") is not None:
            e = Encoder(cfg)
            e.load_state_dict(_float(obj["encoder"]))
    except MALFORMED as err:
        raise ModelFileError(f"{path}: model file does not match its config ({err})".splitlines()[0]) from err
    model = Model(
        cfg, g.eval(), d.eval(), e.eval() if e is not None else None, obj.get("meta", {}), Path(path)
    )
    for p in model.generator.parameters():
        p.requires_grad_(False)
    for p in model.discriminator.parameters():
        p.requires_grad_(False)
    return model.to(device)


# The shipped face models are package data (completion/weights/), so an installed wheel has them
# too; `--model NAME` picks one by name.
WEIGHTS = Path(__file__).resolve().parent / "weights"
SHIPPED = ("celeba64",)
DEFAULT_NAME = "celeba64"
DEFAULT_MODEL = WEIGHTS / f"{DEFAULT_NAME}.pt"


def default_model_path() -> Path:
    """The shipped face model, located relative to the package so any working directory works."""
    return DEFAULT_MODEL


def model_path(spec: str | Path | None) -> Path:
    """A model file from --model: None -> the default; a shipped model's name -> its file; else
    the path as given (a file of that name in the working directory wins over a shipped name)."""
    if spec is None:
        return default_model_path()
    path = Path(spec)
    if str(spec) in SHIPPED and not path.exists():
        return WEIGHTS / f"{spec}.pt"
    return path
