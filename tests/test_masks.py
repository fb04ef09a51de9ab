"""Mask types, mask files and Yeh et al.'s importance weights (fast; no model)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from completion.errors import ImageError, MaskError
from completion.imageio import save_image
from completion.masks import (
    MASK_TYPES_HELP,
    MaskType,
    load_mask,
    make_mask,
    mask_from_alpha,
    mask_to_image,
    parse_mask_type,
    save_mask,
    yeh_weights,
)

ALL_SPECS = [
    "center",
    "left",
    "right",
    "top",
    "bottom",
    "half",
    "random:0.8",
    "random:0.3",
    "pattern",
    "grid:4",
    "grid:2",
    "lowres:4",
    "lowres:3",
    "eyes",
    "mouth",
    "full",
]


def hole_fraction(known: np.ndarray | torch.Tensor) -> float:
    """Share of pixels that are hole (0 or False) in a known mask (moved here from masks.py: only
    the tests measure it)."""
    if isinstance(known, torch.Tensor):
        return 1.0 - float(known.to(torch.float32).mean())
    return 1.0 - float(np.asarray(known, np.float64).mean())


def hole_box(known: np.ndarray) -> tuple[int, int, int, int]:
    """(row0, row1, col0, col1) bounding box of the hole, end-exclusive."""
    rows = np.flatnonzero(~known.all(axis=1))
    cols = np.flatnonzero(~known.all(axis=0))
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def assert_rect_hole(known: np.ndarray, r0: int, r1: int, c0: int, c1: int) -> None:
    expected = np.ones_like(known)
    expected[r0:r1, c0:c1] = False
    np.testing.assert_array_equal(known, expected)


# --- geometry ---------------------------------------------------------------------------------


def test_center_is_exactly_16_48_at_64():
    m = make_mask("center", 64)
    assert m.dtype == bool and m.shape == (64, 64)
    assert_rect_hole(m, 16, 48, 16, 48)


def test_center_scales_with_non_square_size():
    m = make_mask("center", 48, 80)
    assert m.shape == (48, 80)
    assert_rect_hole(m, 12, 36, 20, 60)


@pytest.mark.parametrize(
    "spec, box",
    [
        ("left", (0, 64, 0, 32)),
        ("right", (0, 64, 32, 64)),
        ("top", (0, 32, 0, 64)),
        ("bottom", (32, 64, 0, 64)),
    ],
)
def test_halves(spec, box):
    assert_rect_hole(make_mask(spec, 64), *box)


def test_half_is_left():
    assert parse_mask_type("half") == "left"
    np.testing.assert_array_equal(make_mask("half", 40, 30), make_mask("left", 40, 30))


def test_halves_of_odd_size_cover_everything_once():
    left, right = make_mask("left", 7, 9), make_mask("right", 7, 9)
    np.testing.assert_array_equal(left, ~right)


def test_random_share():
    m = make_mask("random:0.8", 64, seed=3)
    assert abs(hole_fraction(m) - 0.8) <= 0.03


@pytest.mark.parametrize("seed", range(8))
def test_pattern_share(seed):
    share = hole_fraction(make_mask("pattern", 64, seed=seed))
    assert 0.2 <= share <= 0.3


def test_pattern_is_blobs_not_noise():
    # A blob mask has long runs: most hole pixels have a hole neighbour to the right or below.
    m = ~make_mask("pattern", 64, seed=1)
    joined = (m[:, :-1] & m[:, 1:]).sum() + (m[:-1, :] & m[1:, :]).sum()
    assert joined > m.sum()


def test_grid_known_exactly_on_multiples():
    m = make_mask("grid:4", 64)
    y, x = np.mgrid[:64, :64]
    np.testing.assert_array_equal(m, (y % 4 == 0) & (x % 4 == 0))


def test_lowres_known_at_cell_centres():
    m = make_mask("lowres:4", 64)
    assert m.sum() == 16 * 16
    y, x = np.mgrid[:64, :64]
    np.testing.assert_array_equal(m, (y % 4 == 2) & (x % 4 == 2))


@pytest.mark.parametrize("spec, rows", [("eyes", (26, 40)), ("mouth", (47, 62))])
def test_face_bands(spec, rows):
    m = make_mask(spec, 64)
    r0, r1, c0, c1 = hole_box(m)
    assert_rect_hole(m, r0, r1, c0, c1)  # a single non-empty rectangle
    assert r1 > r0 and c1 > c0
    assert rows[0] <= r0 and r1 <= rows[1]
    assert c0 < 32 < c1  # centred horizontally, roughly
    assert abs((c0 + c1) / 2 - 32) <= 1


def test_eyes_above_mouth_at_other_sizes():
    for h, w in [(64, 64), (128, 128), (96, 80)]:
        eyes, mouth = hole_box(make_mask("eyes", h, w)), hole_box(make_mask("mouth", h, w))
        assert eyes[1] <= mouth[0]


def test_full_is_all_hole():
    m = make_mask("full", 20, 30)
    assert m.shape == (20, 30) and not m.any()
    assert hole_fraction(m) == 1.0


def test_hole_fraction_torch_and_numpy():
    m = make_mask("center", 64)
    assert hole_fraction(m) == 0.25
    assert hole_fraction(torch.from_numpy(m).float()) == pytest.approx(0.25)


# --- determinism ------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", ["random:0.5", "pattern"])
def test_seeded(spec):
    a, b = make_mask(spec, 64, seed=7), make_mask(spec, 64, seed=7)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, make_mask(spec, 64, seed=8))


def test_width_defaults_to_height():
    assert make_mask("pattern", 33).shape == (33, 33)


# --- parsing ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec, norm",
    [
        (" Center ", "center"),
        ("random:.8", "random:0.8"),
        ("RANDOM:0.25", "random:0.25"),
        ("grid: 4", "grid:4"),
        ("lowres:2", "lowres:2"),
        ("half", "left"),
    ],
)
def test_parse_normalises(spec, norm):
    assert parse_mask_type(spec) == norm
    assert parse_mask_type(norm) == norm
    # A MaskType is the parsed form: equal however it was spelt, and drawn as its text is.
    assert MaskType(spec) == MaskType(norm) and MaskType(spec).spec == str(MaskType(spec)) == norm
    assert (make_mask(MaskType(spec), 37, 29, seed=2) == make_mask(norm, 37, 29, seed=2)).all()


@pytest.mark.parametrize(
    "spec",
    [
        "blah",
        "",
        "random:1.5",
        "random:0",
        "random:1",
        "random:nan",
        "random:x",
        "random",
        "grid:1",
        "grid:x",
        "grid:2.5",
        "grid",
        "lowres:1",
        "lowres:",
        "center:3",
    ],
)
def test_parse_errors(spec):
    with pytest.raises(ValueError) as e:
        parse_mask_type(spec)
    assert "\n" not in str(e.value)
    with pytest.raises(ValueError):
        make_mask(spec, 64)
    with pytest.raises(ValueError):
        MaskType(spec)  # a MaskType is never invalid


def test_bad_size():
    with pytest.raises(ValueError):
        make_mask("center", 0)


def test_help_mentions_every_type():
    for word in [
        "center",
        "left",
        "half",
        "random:F",
        "pattern",
        "grid:STEP",
        "lowres:FACTOR",
        "eyes",
        "mouth",
    ]:
        assert word in MASK_TYPES_HELP
    assert "\n" not in MASK_TYPES_HELP


# --- files ------------------------------------------------------------------------------------


def test_load_mask_conventions_and_threshold(tmp_path):
    img = np.full((8, 10), 100, np.uint8)
    img[2:5, 3:7] = 200
    save_image(tmp_path / "m.png", img)
    known, resized = load_mask(tmp_path / "m.png", 8, 10)
    assert not resized
    assert_rect_hole(known, 2, 5, 3, 7)
    known_b, _ = load_mask(tmp_path / "m.png", 8, 10, convention="black-hole")
    np.testing.assert_array_equal(known_b, ~known)


def test_threshold_boundary(tmp_path):
    save_image(tmp_path / "m.png", np.array([[127, 128]], np.uint8))
    known, _ = load_mask(tmp_path / "m.png", 1, 2)
    np.testing.assert_array_equal(known, [[True, False]])


def test_load_mask_rgb_file(tmp_path):
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[0, 0] = 255
    save_image(tmp_path / "m.png", rgb)
    known, _ = load_mask(tmp_path / "m.png", 4, 4)
    assert not known[0, 0] and known.sum() == 15


def test_load_mask_resizes_with_flag(tmp_path):
    save_mask(tmp_path / "m.png", make_mask("center", 32))
    known, resized = load_mask(tmp_path / "m.png", 64, 64)
    assert resized
    np.testing.assert_array_equal(known, make_mask("center", 64))


def test_load_mask_small_aspect_difference_is_resized(tmp_path):
    save_mask(tmp_path / "m.png", np.ones((100, 101), bool))
    known, resized = load_mask(tmp_path / "m.png", 100, 100)
    assert resized and known.shape == (100, 100) and known.all()


def test_load_mask_aspect_ratio_error(tmp_path):
    save_mask(tmp_path / "m.png", np.ones((32, 64), bool))
    with pytest.raises(MaskError, match=r"mask is 64x32 but the image is 64x64 \(aspect ratio differs\)"):
        load_mask(tmp_path / "m.png", 64, 64)


def test_load_mask_corrupt(tmp_path):
    (tmp_path / "m.png").write_bytes(b"\x00garbage, not a png\xff" * 10)
    with pytest.raises(ImageError):
        load_mask(tmp_path / "m.png", 64, 64)


def test_load_mask_missing(tmp_path):
    with pytest.raises(ImageError):
        load_mask(tmp_path / "nope.png", 64, 64)


def test_unknown_convention(tmp_path):
    with pytest.raises(ValueError):
        mask_to_image(np.ones((2, 2), bool), "grey-hole")


def test_mask_to_image_values():
    known = np.array([[True, False]])
    np.testing.assert_array_equal(mask_to_image(known), [[0, 255]])
    np.testing.assert_array_equal(mask_to_image(known, "black-hole"), [[255, 0]])
    assert mask_to_image(known).dtype == np.uint8


def test_alpha_mask():
    alpha = np.array([[0, 127, 128, 255]], np.uint8)
    np.testing.assert_array_equal(mask_from_alpha(alpha), [[False, False, True, True]])


# --- Yeh weights ------------------------------------------------------------------------------


def test_yeh_single_pixel_hole():
    known = np.ones((15, 15), bool)
    known[7, 7] = False
    w = yeh_weights(known)
    assert w.dtype == np.float32 and w.shape == (15, 15)
    expected = np.zeros((15, 15), np.float32)
    expected[4:11, 4:11] = 1 / 49
    expected[7, 7] = 0
    np.testing.assert_allclose(w, expected, rtol=1e-6, atol=0)


def test_yeh_24_of_49():
    known = np.ones((15, 15), bool)
    known[4:7, 4:11] = False  # 21 hole pixels in (7,7)'s window
    known[7, 4:7] = False  # and 3 more
    assert yeh_weights(known)[7, 7] == pytest.approx(24 / 49, rel=1e-6)


def test_yeh_padding_counts_as_known():
    known = np.zeros((10, 10), bool)
    known[0, 0] = True  # its window holds 16 image pixels (15 hole) and 33 padding pixels
    w = yeh_weights(known)
    assert w[0, 0] == pytest.approx(15 / 49, rel=1e-6)
    assert (w[1:, :] == 0).all() and (w[:, 1:] == 0).all()


def test_yeh_zero_in_hole_and_far_away_positive_nearby():
    known = make_mask("center", 64)
    w = yeh_weights(known)
    assert (w[~known] == 0).all()
    assert w[0, 0] == 0 and w[5:12, 5:12].max() == 0  # more than 3 px from the hole
    assert w[15, 30] > 0 and w[48, 30] > 0  # right next to the hole
    assert w[13, 30] > 0 and w[12, 30] == 0  # the window reaches exactly 3 px


def test_yeh_torch_matches_numpy():
    known = make_mask("pattern", 48, 40, seed=2)
    w_np = yeh_weights(known, window=5)
    t = torch.from_numpy(np.stack([known, make_mask("random:0.5", 48, 40)])).float()[:, None]
    w_t = yeh_weights(t, window=5)
    assert isinstance(w_t, torch.Tensor) and w_t.dtype == torch.float32 and w_t.shape == (2, 1, 48, 40)
    np.testing.assert_allclose(w_t[0, 0].numpy(), w_np, rtol=1e-6, atol=1e-7)


def test_yeh_rejects_even_window_and_bad_shape():
    with pytest.raises(ValueError):
        yeh_weights(np.ones((8, 8), bool), window=6)
    with pytest.raises(ValueError):
        yeh_weights(torch.ones(1, 3, 8, 8))


# --- properties -------------------------------------------------------------------------------


@settings(max_examples=50, deadline=None)
@given(
    spec=st.sampled_from(ALL_SPECS),
    h=st.integers(8, 96),
    w=st.integers(8, 96),
    seed=st.integers(0, 2**32 - 1),
)
def test_make_mask_shape_property(spec, h, w, seed):
    m = make_mask(spec, h, w, seed=seed)
    assert m.dtype == bool and m.shape == (h, w)
    np.testing.assert_array_equal(m, make_mask(spec, h, w, seed=seed))
    if spec == "pattern":
        assert 0.2 <= hole_fraction(m) <= 0.3


@settings(max_examples=30, deadline=None)
@given(
    h=st.integers(1, 40),
    w=st.integers(1, 40),
    seed=st.integers(0, 2**32 - 1),
    convention=st.sampled_from(["white-hole", "black-hole"]),
)
def test_file_round_trip_property(tmp_path_factory, h, w, seed, convention):
    folder = tmp_path_factory.mktemp("rt")
    grey = np.random.default_rng(seed).integers(0, 256, (h, w), dtype=np.uint8)
    save_image(folder / "grey.png", grey)
    known, resized = load_mask(folder / "grey.png", h, w, convention)
    assert not resized
    white = grey > 127
    np.testing.assert_array_equal(known, ~white if convention == "white-hole" else white)
    np.testing.assert_array_equal(mask_to_image(known, convention), np.where(white, 255, 0))
    save_mask(folder / "mask.png", known, convention)
    again, _ = load_mask(folder / "mask.png", h, w, convention)
    np.testing.assert_array_equal(again, known)
