"""One declaration per option (completion/options.py): the command line, the HTTP API's request
model (and so /openapi.json) and the dataclasses' own validation all say the same thing."""

from __future__ import annotations

import math
from dataclasses import fields

import click
import pytest
from cli_helpers import assert_range_of

from completion.cli import main
from completion.config import SEED_MAX
from completion.options import CompletionOptions, EncoderOptions, TrainOptions, public_fields, spec_of

# Which options dataclass (and group) each command takes.
COMMANDS = {
    "complete": [(CompletionOptions, ""), (CompletionOptions, "candidates")],
    "batch": [(CompletionOptions, "")],
    "evaluate": [(CompletionOptions, "")],
    "train": [(TrainOptions, None)],
    "train-encoder": [(EncoderOptions, None)],
}


def _inside(spec, value: float) -> bool:  # noqa: ANN001
    low_ok = spec.low is None or (value > spec.low if spec.low_open else value >= spec.low)
    high_ok = spec.high is None or (value < spec.high if spec.high_open else value <= spec.high)
    return low_ok and high_ok


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_cli_options_are_the_declared_fields(command: str) -> None:
    params = {p.name: p for p in main.commands[command].params}
    for cls, group in COMMANDS[command]:
        for f in public_fields(cls, group):
            spec, p = spec_of(f), params[f.name]
            assert p.default == f.default and p.help == spec.help, (command, f.name)
            if isinstance(f.default, bool):
                assert p.is_flag and p.secondary_opts == ["--no-" + f.name.replace("_", "-")]
            elif spec.choices:
                assert tuple(p.type.choices) == spec.choices
            else:
                assert_range_of(p, spec)


@pytest.mark.parametrize("cls", [CompletionOptions, TrainOptions, EncoderOptions])
def test_dataclass_refuses_what_the_cli_refuses(cls: type) -> None:
    """The dataclass validates with the declared ranges and choices: the ends the CLI accepts are
    accepted, a step beyond them (and nan) is refused."""
    required = {"data": "d", "out": "o"}
    base = {k: v for k, v in required.items() if k in {f.name for f in fields(cls)}}
    for f in public_fields(cls):
        spec = spec_of(f)
        if spec.choices:
            for c in spec.choices:
                cls(**base, **{f.name: c})
            with pytest.raises(ValueError, match=f.name):
                cls(**base, **{f.name: "nonsense"})
            continue
        if isinstance(f.default, bool):
            continue
        floaty = isinstance(f.default, float)
        for end, is_open, step in ((spec.low, spec.low_open, -1), (spec.high, spec.high_open, 1)):
            if end is None:
                continue
            inside = end - step * (0.25 if floaty else 1) if is_open else end
            outside = end + step * (0.25 if floaty else 1) if not is_open else end
            assert _inside(spec, inside) and not _inside(spec, outside)
            cls(**base, **{f.name: type(f.default or 0)(inside) if not floaty else float(inside)})
            with pytest.raises(ValueError, match=f.name):
                cls(**base, **{f.name: float(outside) if floaty else int(outside)})
        if floaty:
            with pytest.raises(ValueError, match=f.name):
                cls(**base, **{f.name: math.nan})


def test_api_schema_is_the_declared_fields() -> None:
    """/api/complete's form fields that set CompletionOptions carry the field's description, default
    and range (narrowed, never widened, by the API's own limits); the seed's range is SEED_MAX's."""
    pytest.importorskip("fastapi")
    from completion.serve import MAX_ITERATIONS, MAX_SAMPLES, CompleteRequest, _complete_body

    props = _complete_body()["content"]["multipart/form-data"]["schema"]["properties"]
    assert props == {**props, **CompleteRequest.model_json_schema()["properties"]}
    by_name = {f.name: f for f in fields(CompletionOptions)}
    limits = {"samples": MAX_SAMPLES, "iterations": MAX_ITERATIONS, "seed": SEED_MAX}
    for name, high in limits.items():
        spec = spec_of(by_name[name])
        prop = props[name]
        if "anyOf" in prop:  # optional: the server's default
            prop = {**prop, **next(p for p in prop["anyOf"] if p.get("type") == "integer")}
        assert prop["minimum"] == spec.low
        assert prop["maximum"] == min(e for e in (high, spec.high) if e is not None)
        assert prop.get("description", spec.help) in (spec.help, "Adam steps on z (default: the server's).")
    assert props["seed"]["maximum"] == SEED_MAX and props["seed"]["default"] == CompletionOptions.seed
    assert props["samples"]["default"] == CompletionOptions.samples
    assert set(CompleteRequest.model_fields) >= set(limits)


def test_completion_precision_goes_through_resolve_precision(monkeypatch: pytest.MonkeyPatch) -> None:
    """auto is the default: bf16 where the CPU computes it, else fp32 (training's rule, device.py);
    fp32 is taken as is; an explicit bf16 is refused where it would be emulated."""

    from completion import device as device_mod
    from completion.bundle import Model
    from completion.complete import Completer
    from completion.config import ModelConfig
    from completion.models import Discriminator, Generator

    cfg = ModelConfig(ngf=8, ndf=8)
    model = Model(cfg, Generator(cfg).eval(), Discriminator(cfg).eval())
    assert CompletionOptions().precision == "auto"
    monkeypatch.setattr(device_mod, "cpu_has_native_bf16", lambda: False)
    assert Completer(model).options.precision == "fp32"
    assert Completer(model, CompletionOptions(precision="fp32")).options.precision == "fp32"
    with pytest.raises(ValueError, match="bf16"):
        Completer(model, CompletionOptions(precision="bf16"))
    monkeypatch.setattr(device_mod, "cpu_has_native_bf16", lambda: True)
    assert Completer(model).options.precision == "bf16"
    assert Completer(model, CompletionOptions(precision="fp32")).options.precision == "fp32"
    assert Completer(model).with_options(precision="bf16").options.precision == "bf16"


def test_serve_takes_no_search_option_it_does_not_declare() -> None:
    """serve's command line names no completion option of its own (the API takes them per request)."""
    names = {p.name for p in main.commands["serve"].params}
    assert not names & {f.name for f in public_fields(CompletionOptions)}
    assert isinstance(main.commands["serve"], click.Command)
