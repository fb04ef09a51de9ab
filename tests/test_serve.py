"""`completion serve`: the HTTP API through FastAPI's test client, candidates, limits and errors."""

from __future__ import annotations

import base64
import io
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_helpers import tiny_bundle
from click.testing import CliRunner
from PIL import Image

from completion.bundle import load_model
from completion.cli import main
from completion.complete import Completer, CompletionOptions
from completion.errors import ImageError
from completion.imageio import MAX_PIXELS, load_rgb

fastapi = pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from completion.serve import create_app  # noqa: E402

SIZE = 32


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A width-8, 32 px model with random weights: the API's plumbing needs no trained model."""
    return tiny_bundle(tmp_path_factory.mktemp("model") / "tiny.pt", SIZE, crop="none")


@pytest.fixture(scope="module")
def completer(bundle: Path) -> Completer:
    return Completer(load_model(bundle), CompletionOptions(iterations=3))


@pytest.fixture(scope="module")
def client(completer: Completer):  # noqa: ANN201
    with TestClient(create_app(completer, queue_size=2)) as c:
        yield c


def png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


@pytest.fixture(scope="module")
def face() -> np.ndarray:
    return np.random.default_rng(3).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def hole() -> np.ndarray:
    """White = hole: the central square."""
    m = np.zeros((SIZE, SIZE), np.uint8)
    m[8:24, 8:24] = 255
    return m


def post(client: TestClient, image: bytes, mask: bytes | None = None, **fields: object):  # noqa: ANN201
    files = {"image": ("x.png", image, "image/png")}
    if mask is not None:
        files["mask"] = ("m.png", mask, "image/png")
    return client.post("/api/complete", files=files, data={k: str(v) for k, v in fields.items()})


def test_health(client: TestClient) -> None:
    r = client.get("/api/health")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok" and body["image_size"] == SIZE and body["model"] == "tiny.pt"
    assert body["queue"] == {"admitted": 0, "capacity": 2} and body["max_samples"] == 8


def test_complete_png_changes_only_the_hole(client: TestClient, face: np.ndarray, hole: np.ndarray) -> None:
    r = post(client, png(face), png(hole))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png" and r.headers["x-seed"] == "0"
    out = decode(r.content)
    known = hole == 0
    assert out.shape == face.shape
    assert np.array_equal(out[known], face[known])
    assert not np.array_equal(out[~known], face[~known])


def test_candidates_json_sorted_and_reproducible(
    client: TestClient, face: np.ndarray, hole: np.ndarray
) -> None:
    r = post(client, png(face), png(hole), samples=3, seed=5)
    assert r.status_code == 200, r.text
    body = r.json()
    cands = body["candidates"]
    assert (body["width"], body["height"]) == (SIZE, SIZE) and len(body["crops"]) == 1
    assert sorted(c["seed"] for c in cands) == [5, 6, 7]
    assert [c["loss"] for c in cands] == sorted(c["loss"] for c in cands)
    images = [decode(base64.b64decode(c["png"])) for c in cands]
    known = hole == 0
    for im in images:
        assert np.array_equal(im[known], face[known])
    # Different seeds give different completions, and one seed alone gives its candidate again.
    assert not np.array_equal(images[0], images[1])
    again = post(client, png(face), png(hole), seed=cands[1]["seed"])
    assert again.status_code == 200
    assert np.array_equal(decode(again.content), images[1])


def test_mask_type_and_json_format(client: TestClient, face: np.ndarray) -> None:
    r = post(client, png(face), mask_type="center", format="json", iterations=0)
    assert r.status_code == 200, r.text
    (cand,) = r.json()["candidates"]
    assert cand["steps"] == 0 and cand["seed"] == 0


def test_transparency_is_the_hole(client: TestClient, face: np.ndarray) -> None:
    rgba = np.dstack([face, np.full((SIZE, SIZE), 255, np.uint8)])
    rgba[10:20, 10:20, 3] = 0
    r = post(client, png(rgba))
    assert r.status_code == 200
    out = decode(r.content)
    assert np.array_equal(out[:10], face[:10])


def paste(base: np.ndarray, regions: list[dict]) -> np.ndarray:
    """A light answer's candidate: its regions pasted over the input, as the page does."""
    out = base.copy()
    for r in regions:
        out[r["y"] : r["y"] + r["h"], r["x"] : r["x"] + r["w"]] = decode(base64.b64decode(r["png"]))
    return out


def test_changed_regions_rebuild_the_full_answer(
    client: TestClient, face: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    """regions=changed carries each candidate as rectangles over the input: pasted, they give the
    full answer's image exactly, and they cover little more than the hole."""
    monkeypatch.setattr("completion.serve.TILE", 16)  # a 32-px image on a grid of 2x2 tiles
    hole = np.zeros((SIZE, SIZE), np.uint8)
    hole[4:9, 3:12] = 255  # two separate holes: two tight rectangles, not one box over both
    hole[20:30, 22:27] = 255
    full = post(client, png(face), png(hole), samples=2, seed=1).json()
    light = post(client, png(face), png(hole), samples=2, seed=1, regions="changed")
    assert light.status_code == 200 and light.headers["content-type"] == "application/json"
    body = light.json()
    assert [c["seed"] for c in body["candidates"]] == [c["seed"] for c in full["candidates"]]
    for c, f in zip(body["candidates"], full["candidates"], strict=True):
        assert "png" not in c
        boxes = sorted((r["x"], r["y"], r["w"], r["h"]) for r in c["regions"])
        assert boxes == [(3, 4, 9, 5), (22, 20, 5, 10)]
        assert np.array_equal(paste(face, c["regions"]), decode(base64.b64decode(f["png"])))
    # samples=1 with regions=changed answers JSON (format=auto), the old PNG answer stays the default.
    one = post(client, png(face), png(hole), regions="changed")
    assert one.headers["content-type"] == "application/json"
    assert post(client, png(face), png(hole)).headers["content-type"] == "image/png"


def test_changed_regions_where_transparency_was_the_hole(client: TestClient, face: np.ndarray) -> None:
    rgba = np.dstack([face, np.full((SIZE, SIZE), 255, np.uint8)])
    rgba[10:20, 10:20, 3] = 0
    rgba[2, 30, 3] = 200  # known, but the opaque answer changes it (composited onto black)
    r = post(client, png(rgba), regions="changed")
    boxes = sorted((g["x"], g["y"], g["w"], g["h"]) for g in r.json()["candidates"][0]["regions"])
    assert boxes == [(10, 2, 21, 18)]  # one tile: both the hole and the half-transparent pixel
    full = decode(post(client, png(rgba)).content)
    assert np.array_equal(paste(full, r.json()["candidates"][0]["regions"]), full)


def test_mask_endpoint_draws_the_hole_complete_fills(client: TestClient, face: np.ndarray) -> None:
    r = client.post("/api/mask", files={"image": ("x.png", png(face))}, data={"mask_type": "center"})
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    hole = decode(r.content)[..., 0] > 127
    assert hole.shape == (SIZE, SIZE) and 0 < hole.sum() < SIZE * SIZE
    done = decode(post(client, png(face), mask_type="center").content)
    assert np.array_equal(done[~hole], face[~hole]) and not np.array_equal(done[hole], face[hole])
    bad = client.post("/api/mask", files={"image": ("x.png", png(face))}, data={"samples": "2"})
    assert bad.status_code == 400 and "unknown field 'samples'" in bad.json()["error"]
    none = client.post("/api/mask", files={"image": ("x.png", png(face))})
    assert none.status_code == 400 and "mask_type" in none.json()["error"]


@pytest.mark.parametrize(
    ("fields", "files", "message"),
    [
        ({}, {}, "missing the 'image' file field"),
        ({"samples": "9"}, None, "samples: 9 is not in the range 1<=x<=8"),
        ({"samples": "two"}, None, "samples: 'two' is not an integer"),
        ({"iterations": "-1"}, None, "iterations: -1 is not in the range 0<=x<=1000"),
        ({"mask_type": "blob"}, None, "mask_type: "),
        ({"mask_type": "center", "mask": True}, None, "give either mask or mask_type, not both"),
        ({"box": "1,2,3"}, None, "box: box '1,2,3': expected x,y,w,h"),
        ({"box": "1,2,3,4", "aligned": "true"}, None, "give either box or aligned, not both"),
        ({"format": "png", "samples": "2"}, None, "format=png returns one image"),
        ({"format": "png", "regions": "changed"}, None, "regions=changed is a JSON answer"),
        ({"regions": "some"}, None, "regions: 'some' is not one of full, changed"),
        ({"colour": "red"}, None, "unknown field 'colour'"),
    ],
)
def test_bad_fields_are_one_line_json_errors(
    client: TestClient, face: np.ndarray, hole: np.ndarray, fields: dict, files: dict | None, message: str
) -> None:
    fields = dict(fields)
    upload = {"image": ("x.png", png(face), "image/png")} if files is None else files
    if fields.pop("mask", False):
        upload["mask"] = ("m.png", png(hole), "image/png")
    if not upload:  # a multipart body without the image
        upload = {"other": ("o.png", b"x", "image/png")}
    r = client.post("/api/complete", files=upload, data=fields)
    assert r.status_code == 400
    err = r.json()["error"]
    assert message in err and "\n" not in err


def test_unreadable_image_says_what_the_cli_says(client: TestClient) -> None:
    r = post(client, b"GIF89a not really")
    assert r.status_code == 400
    with pytest.raises(ImageError) as cli_error:
        load_rgb(Path("image"), data=b"GIF89a not really")
    assert r.json() == {"error": str(cli_error.value)}


def test_mask_of_another_shape(client: TestClient, face: np.ndarray) -> None:
    r = post(client, png(face), png(np.zeros((10, 40), np.uint8)))
    assert r.status_code == 400
    assert r.json()["error"] == "mask: mask is 40x10 but the image is 32x32 (aspect ratio differs)"


def test_decompression_bomb_refused_before_decoding(client: TestClient) -> None:
    side = int(MAX_PIXELS**0.5) + 100
    buf = io.BytesIO()
    Image.new("1", (side, side)).save(buf, format="PNG")  # tiny file, > MAX_PIXELS pixels
    r = post(client, buf.getvalue(), mask_type="center")
    assert r.status_code == 400
    assert r.json()["error"] == (
        f"image: image is {side}x{side} pixels, above the limit of {MAX_PIXELS:,}; refused before decoding"
    )


def test_upload_limit_is_413(completer: Completer, face: np.ndarray) -> None:
    with TestClient(create_app(completer, max_upload=2000)) as small:
        r = post(small, png(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)))
    assert r.status_code == 413
    assert "above the limit of 2,000" in r.json()["error"]


def test_full_queue_is_503(completer: Completer, face: np.ndarray) -> None:
    app = create_app(completer, queue_size=1)
    with TestClient(app) as c:
        app.state.worker.admit()  # the one place is taken
        try:
            r = post(c, png(face), mask_type="center")
        finally:
            app.state.worker.release()
        assert r.status_code == 503 and "busy" in r.json()["error"]
        assert post(c, png(face), mask_type="center").status_code == 200


def test_uploads_stay_in_memory(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """A 3 MB upload is parsed without any temporary file (Starlette spools to disk above 1 MB)."""

    def no_disk(*a: object, **k: object) -> None:
        raise AssertionError("an upload reached a temporary file")

    for name in ("TemporaryFile", "NamedTemporaryFile", "mkstemp"):
        monkeypatch.setattr(tempfile, name, no_disk)
    big = np.random.default_rng(1).integers(0, 256, (1000, 1000, 3), dtype=np.uint8)
    data = png(big)
    assert len(data) > 2_000_000
    r = post(client, data, mask_type="center", aligned="true", iterations=0)
    assert r.status_code == 200, r.text
    assert decode(r.content).shape == big.shape


def test_samples_only_from_the_fixed_list(client: TestClient) -> None:
    names = client.get("/api/samples").json()["samples"]
    assert "face_01.png" in names and "photo.png" in names
    r = client.get("/api/samples/face_01.png")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert decode(r.content).shape == (64, 64, 3)
    for bad in ("..%2F..%2Fpyproject.toml", "%2Fetc%2Fpasswd", "face_01.jpg", "index.html"):
        r = client.get(f"/api/samples/{bad}")
        assert r.status_code == 404 and "error" in r.json()


def test_faces_endpoint(client: TestClient) -> None:
    photo = client.get("/api/samples/photo.png").content  # one face, about 186x233 at (180, 87)
    r = client.post("/api/faces", files={"image": ("x.png", photo, "image/png")})
    assert r.status_code == 200
    body = r.json()
    assert (body["width"], body["height"]) == (480, 360) and len(body["faces"]) == 1
    f = body["faces"][0]
    assert 150 < f["x"] + f["w"] / 2 < 400 and 100 < f["y"] + f["h"] / 2 < 300
    r = client.post("/api/faces", files={"image": ("x.png", b"not an image", "image/png")})
    assert r.status_code == 400 and r.json() == {"error": "image: not a readable image"}


def test_page_is_self_contained(client: TestClient) -> None:
    r = client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    html = r.text
    assert "/api/complete" in html
    for external in ('src="http', "src='http", 'href="http', "@import", "url(http", "//cdn"):
        assert external not in html


def test_openapi_documents_the_api(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    body = spec["paths"]["/api/complete"]["post"]["requestBody"]["content"]["multipart/form-data"]
    assert body["schema"]["required"] == ["image"]
    assert {"image", "mask", "mask_type", "samples", "seed", "iterations"} <= set(
        body["schema"]["properties"]
    )
    assert "regions" in body["schema"]["properties"] and "/api/mask" in spec["paths"]
    assert "/api/health" in spec["paths"]
    assert client.get("/docs").status_code == 404  # its scripts come from a CDN: not served
    assert client.get("/nowhere").json() == {"error": "Not Found"}


# -- candidates in the library and the CLI ----------------------------------------------------------


def test_library_candidates(completer: Completer, face: np.ndarray, hole: np.ndarray) -> None:
    known = hole == 0
    single = completer.complete(face, known)
    many = completer.with_options(samples=4).complete(face, known)
    assert [c.seed for c in sorted(many.candidates, key=lambda c: c.seed)] == [0, 1, 2, 3]
    assert [c.loss for c in many.candidates] == sorted(c.loss for c in many.candidates)
    assert many.loss == many.candidates[0].loss and many.seed == many.candidates[0].seed
    # Seed 0 among candidates is the plain single completion, bit for bit.
    zero = next(c for c in many.candidates if c.seed == 0)
    assert np.array_equal(zero.image, single.image)
    with pytest.raises(ValueError, match="samples"):
        CompletionOptions(samples=0)
    with pytest.raises(ValueError, match="spread"):
        CompletionOptions(spread=float("nan"))


def test_cli_samples_writes_every_candidate(bundle: Path, face: np.ndarray, tmp_path: Path) -> None:
    src = tmp_path / "face.png"
    Image.fromarray(face).save(src)
    out = tmp_path / "out.png"
    args = ["complete", "--model", bundle, "--image", src, "--mask-type", "center", "--iterations", "3"]
    r = CliRunner().invoke(main, [str(a) for a in [*args, "--out", out, "--samples", "3", "--seed", "10"]])
    assert r.exit_code == 0, r.output
    seeds = {10, 11, 12}
    written = {int(p.stem.split(".seed")[1]): decode(p.read_bytes()) for p in tmp_path.glob("out.seed*.png")}
    assert set(written) == seeds
    best = decode(out.read_bytes())
    assert any(np.array_equal(best, im) for im in written.values())
    again = tmp_path / "again.png"
    r = CliRunner().invoke(main, [str(a) for a in [*args, "--out", again, "--seed", "11"]])
    assert r.exit_code == 0, r.output
    assert np.array_equal(decode(again.read_bytes()), written[11])


def test_serve_command_binds_localhost_by_default(bundle: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import completion.serve

    seen: dict = {}

    def fake_run(app, sock) -> None:  # noqa: ANN001
        seen.update(app=app, address=sock.getsockname())
        sock.close()

    monkeypatch.setattr(completion.serve, "run_server", fake_run)
    r = CliRunner().invoke(main, ["serve", "--model", str(bundle), "--port", "0", "--queue", "3",
                                  "--max-pixels", "5000000"])  # fmt: skip
    assert r.exit_code == 0, r.output
    host, port = seen["address"]
    assert host == "127.0.0.1" and port > 0
    assert seen["app"].state.worker.capacity == 3
    assert seen["app"].state.gate.limits.max_pixels == 5_000_000
    seen["app"].state.worker.close()
    r = CliRunner().invoke(main, ["serve", "--model", str(bundle / "missing.pt")])
    assert r.exit_code == 1 and "no such model file" in r.output


def test_a_place_is_held_until_the_job_ends() -> None:
    """A job whose client went away still holds its place until the worker has finished it."""
    import threading

    from completion.serve import ModelWorker, QueueFull

    w = ModelWorker(1)
    gate = threading.Event()
    w.admit()
    future = w.submit(gate.wait)
    future.add_done_callback(lambda _: w.release())
    with pytest.raises(QueueFull):
        w.admit()
    gate.set()
    future.result(timeout=10)
    w.admit()  # free again
    w.release()
    w.close()


def test_each_job_runs_on_the_threads_the_machine_leaves_free(monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker chooses torch's threads as each job starts: the free cores, or --threads."""

    from completion import device
    from completion.serve import ModelWorker

    before = torch.get_num_threads()
    free = iter([1, 2])
    monkeypatch.setattr(device, "free_threads", lambda meter=None: next(free))
    try:
        w = ModelWorker(1)
        assert [w.submit(torch.get_num_threads).result(timeout=10) for _ in range(2)] == [1, 2]
        w.close()
        fixed = ModelWorker(1, threads=1)
        assert fixed.submit(torch.get_num_threads).result(timeout=10) == 1 and fixed.last_threads == 1
        fixed.close()
    finally:
        torch.set_num_threads(before)
