"""Model files: every bad input is one ModelFileError naming the file, and no file can run code."""

from __future__ import annotations

import os
import pickle
import random
from pathlib import Path

import pytest
import torch

from completion.bundle import FORMAT, load_model, read_file, save_model, write_file
from completion.config import ModelConfig
from completion.errors import ModelFileError
from completion.models import Discriminator, Encoder, Generator


@pytest.fixture
def bundle(tmp_path: Path, tiny_cfg: ModelConfig) -> Path:
    path = tmp_path / "model.pt"
    save_model(path, tiny_cfg, Generator(tiny_cfg), Discriminator(tiny_cfg), None, {"dataset": "x"})
    return path


def refused(path: Path, match: str | None = None) -> ModelFileError:
    with pytest.raises(ModelFileError) as info:
        load_model(path)
    msg = str(info.value)
    assert str(path) in msg
    assert "\n" not in msg
    if match:
        assert match in msg
    return info.value


def test_round_trip(bundle: Path, tiny_cfg: ModelConfig) -> None:
    model = load_model(bundle)
    assert model.config == tiny_cfg
    assert model.encoder is None and model.meta == {"dataset": "x"} and model.path == bundle
    assert not model.generator.training and not model.discriminator.training
    assert next(model.generator.parameters()).dtype == torch.float32
    assert model.device == torch.device("cpu")


def test_round_trip_with_encoder(tmp_path: Path, tiny_cfg: ModelConfig) -> None:
    path = tmp_path / "with_encoder.pt"
    enc = Encoder(tiny_cfg)
    save_model(path, tiny_cfg, Generator(tiny_cfg), Discriminator(tiny_cfg), enc)
    model = load_model(path)
    assert model.encoder is not None and not model.encoder.training


def test_missing_file(tmp_path: Path) -> None:
    refused(tmp_path / "nope.pt", "no such")


def test_folder(tmp_path: Path) -> None:
    refused(tmp_path, "folder")


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_garbage_bytes(tmp_path: Path) -> None:
    # Seeds 2 and 20 make torch's unpickler raise IndexError and KeyError; all must be ModelFileError.
    for seed in range(60):
        path = tmp_path / f"garbage{seed}.pt"
        path.write_bytes(random.Random(seed).randbytes(4096))
        refused(path)


def test_damaged_bundles(tmp_path: Path, bundle: Path) -> None:
    """Bit flips, overwritten runs and truncation of a real bundle: an error line, never a traceback."""
    good = bundle.read_bytes()
    for seed in range(150):
        r = random.Random(seed)
        b = bytearray(good)
        if seed % 3 == 0:
            b = b[: r.randrange(len(b))]
        elif seed % 3 == 1:
            for _ in range(r.randint(1, 20)):
                b[r.randrange(len(b))] = r.randrange(256)
        else:
            i = r.randrange(len(b))
            b[i : i + 64] = r.randbytes(64)
        path = tmp_path / f"damaged{seed}.pt"
        path.write_bytes(bytes(b))
        try:
            load_model(path)  # a flip in padding can leave the file loadable
        except ModelFileError as e:
            assert str(path) in str(e) and "\n" not in str(e)


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.pt"
    path.write_bytes(b"")
    refused(path)


def test_truncated_bundle(tmp_path: Path, bundle: Path) -> None:
    data = bundle.read_bytes()
    path = tmp_path / "truncated.pt"
    path.write_bytes(data[: len(data) // 2])
    refused(path, "corrupt or truncated")


def test_unsupported_version(tmp_path: Path, bundle: Path) -> None:
    obj = torch.load(bundle, weights_only=True)
    obj["version"] = 99
    path = tmp_path / "v99.pt"
    torch.save(obj, path)
    refused(path, "version 99")


def test_foreign_dict(tmp_path: Path) -> None:
    path = tmp_path / "foreign.pt"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, path)
    refused(path, "not a dcgan-completion")


def test_checkpoint_where_model_expected(tmp_path: Path, tiny_cfg: ModelConfig) -> None:
    path = tmp_path / "checkpoint.pt"
    write_file(path, {"format": FORMAT, "kind": "checkpoint", "version": 1, "config": tiny_cfg.to_dict()})
    refused(path, "checkpoint")
    assert read_file(path, "checkpoint")["kind"] == "checkpoint"


def test_weights_not_matching_config(tmp_path: Path, bundle: Path) -> None:
    obj = torch.load(bundle, weights_only=True)
    obj["config"]["ngf"] = 16
    path = tmp_path / "mismatch.pt"
    torch.save(obj, path)
    refused(path, "does not match")


class Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("writer", ["torch", "pickle"])
def test_pickle_payload_is_refused(tmp_path: Path, writer: str) -> None:
    marker = (tmp_path / "MARKER").resolve()
    path = tmp_path / f"evil_{writer}.pt"
    payload = {"format": FORMAT, "kind": "model", "version": 1, "meta": Exploit(marker)}
    if writer == "torch":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload, protocol=2))
    refused(path)
    assert not marker.exists()


def test_exploit_payload_is_live(tmp_path: Path) -> None:
    """Control: the payload above really runs its command when unpickled without restrictions."""
    marker = (tmp_path / "CONTROL").resolve()
    pickle.loads(pickle.dumps(Exploit(marker)))  # noqa: S301 - deliberate
    assert marker.exists()


def test_model_names_pick_shipped_models_and_paths_stay_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from completion.bundle import SHIPPED, WEIGHTS, default_model_path, model_path

    assert model_path(None) == default_model_path()
    for name in SHIPPED:
        assert model_path(name) == WEIGHTS / f"{name}.pt"
    assert model_path(tmp_path / "x.pt") == tmp_path / "x.pt"
    monkeypatch.chdir(tmp_path)
    (tmp_path / SHIPPED[0]).write_bytes(b"")  # a file of that name here is what the user means
    assert model_path(SHIPPED[0]) == Path(SHIPPED[0])


@pytest.mark.parametrize(
    ("section", "value"),
    [
        ("config", None),
        ("config", [1, 2]),
        ("generator", None),
        ("generator", {"w": [0.0]}),
        ("encoder", "x"),
    ],
)
def test_sections_of_the_wrong_kind_are_named(
    tmp_path: Path, bundle: Path, section: str, value: object
) -> None:
    """A section that is missing or of the wrong kind is named in one line (not a KeyError or an
    AttributeError from the loader, which would hide the loader's own bugs)."""
    obj = torch.load(bundle, weights_only=True)
    obj[section] = value
    path = tmp_path / "odd.pt"
    torch.save(obj, path)
    refused(path, f"no valid {section!r}")
