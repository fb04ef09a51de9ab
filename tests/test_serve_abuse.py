"""`completion serve` against clients that send slowly, vanish, or send too much (issue 22): a real
uvicorn server on 127.0.0.1 in a thread, raw sockets for the misbehaving clients."""

from __future__ import annotations

import contextlib
import io
import json
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import tiny_bundle
from click.testing import CliRunner
from PIL import Image

from completion.bundle import load_model
from completion.cli import main
from completion.complete import Completer, CompletionOptions

pytest.importorskip("fastapi")
uvicorn = pytest.importorskip("uvicorn")
from fastapi.testclient import TestClient  # noqa: E402

from completion.serve import bind, create_app  # noqa: E402

SIZE = 32
BOUNDARY = "XyZboundary"


@pytest.fixture(scope="module")
def completer(tmp_path_factory: pytest.TempPathFactory) -> Completer:
    path = tiny_bundle(tmp_path_factory.mktemp("model") / "tiny.pt", SIZE, crop="none")
    return Completer(load_model(path), CompletionOptions(iterations=3))


def png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


FACE = np.random.default_rng(3).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)


def multipart(parts: list[tuple[str, bytes, bool]]) -> bytes:
    """A multipart body of (name, value, is_file) parts."""
    out = b""
    for name, value, is_file in parts:
        disp = f'form-data; name="{name}"' + (f'; filename="{name}.png"' if is_file else "")
        out += f"--{BOUNDARY}\r\nContent-Disposition: {disp}\r\n\r\n".encode() + value + b"\r\n"
    return out + f"--{BOUNDARY}--\r\n".encode()


def head(port: int, length: int) -> bytes:
    return (
        f"POST /api/complete HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\nContent-Length: {length}\r\n\r\n"
    ).encode()


@contextlib.contextmanager
def server(app) -> Iterator[int]:  # noqa: ANN001
    """app served by uvicorn on a free port of 127.0.0.1, in a thread; yields the port."""
    sock = bind("127.0.0.1", 0)
    srv = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    try:
        yield sock.getsockname()[1]
    finally:
        srv.should_exit = True
        thread.join(timeout=20)
        sock.close()


def call(port: int, body: bytes, path: str = "/api/complete", timeout: float = 30) -> tuple[int, bytes]:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=body,
        headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def health(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=10) as r:
        return json.loads(r.read())


def valid_body(**fields: str) -> bytes:
    extra = [(k, v.encode(), False) for k, v in fields.items()]
    return multipart([("image", png(FACE), True), ("mask_type", b"center", False), *extra])


# -- 1. slow uploads ---------------------------------------------------------------------------------


def test_slow_uploads_hold_no_queue_place(completer: Completer) -> None:
    """More clients than queue places send headers and a first boundary line, then nothing: a valid
    request is still answered, and each slow one gets 408 at its deadline."""
    app = create_app(completer, queue_size=2, max_uploads=8, upload_timeout=3.0)
    with server(app) as port:
        slow = []
        for _ in range(4):  # twice the queue
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(head(port, 100_000) + f"--{BOUNDARY}\r\n".encode())
            slow.append(s)
        time.sleep(0.3)
        h = health(port)
        assert h["queue"]["admitted"] == 0 and h["uploads"]["receiving"] == 4
        t0 = time.monotonic()
        status, body = call(port, valid_body())
        assert status == 200, body
        assert time.monotonic() - t0 < 2.5  # served while they hang, not after their deadline
        for s in slow:
            s.settimeout(10)
            answer = s.recv(4096)
            assert answer.startswith(b"HTTP/1.1 408"), answer[:80]
            s.close()
        assert health(port)["uploads"]["receiving"] == 0


def test_uploads_in_flight_are_bounded(completer: Completer) -> None:
    app = create_app(completer, queue_size=2, max_uploads=2, upload_timeout=10.0)
    with server(app) as port:
        slow = [socket.create_connection(("127.0.0.1", port)) for _ in range(2)]
        for s in slow:
            s.sendall(head(port, 100_000))
        time.sleep(0.3)
        status, body = call(port, valid_body())
        assert status == 503 and b"uploads arriving" in body
        for s in slow:
            s.close()
        time.sleep(0.3)
        assert call(port, valid_body())[0] == 200


# -- 2. abandoned jobs -------------------------------------------------------------------------------


def test_an_abandoned_job_stops_between_steps(completer: Completer) -> None:
    """A client that closes its connection mid-search frees its place within a second; the full job
    would take several times longer."""
    app = create_app(completer, queue_size=2)
    body = valid_body(iterations="1000", samples="8", format="json")
    with server(app) as port:
        t0 = time.monotonic()
        assert call(port, body)[0] == 200
        full = time.monotonic() - t0
        assert full > 1.5, f"the full job takes {full:.2f} s: too quick to tell an early stop"
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(head(port, len(body)) + body)
        deadline = time.monotonic() + 10
        while health(port)["queue"]["admitted"] == 0:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        time.sleep(0.2)  # the search is running
        s.close()
        gone = time.monotonic()
        while health(port)["queue"]["admitted"] != 0:
            assert time.monotonic() - gone < min(1.0, full / 2), "the abandoned job kept its place"
            time.sleep(0.02)


# -- 3. the server's pixel limit -----------------------------------------------------------------------


def test_server_pixel_limit_refuses_from_the_header(completer: Completer) -> None:
    app = create_app(completer, max_pixels=1000)  # 32x32 = 1024 pixels
    with TestClient(app) as c:
        assert c.get("/api/health").json()["max_pixels"] == 1000
        r = c.post("/api/complete", files={"image": ("x.png", png(FACE), "image/png")})
        assert r.status_code == 400
        assert r.json()["error"] == (
            "image: image is 32x32 pixels, above this server's limit of 1,000; refused before decoding"
        )
        assert c.get("/api/health").json()["queue"]["admitted"] == 0
    assert create_app(completer).state.gate.limits.max_pixels == 25_000_000  # a 6000x4000 photo fits


# -- 4. the API description and status codes -----------------------------------------------------------


def test_405_has_allow_and_head_on_the_page(completer: Completer) -> None:
    with TestClient(create_app(completer)) as c:
        r = c.get("/api/complete")
        assert r.status_code == 405 and r.headers["allow"] == "POST" and "error" in r.json()
        r = c.delete("/api/health")
        assert r.status_code == 405 and r.headers["allow"] == "GET"
        assert c.head("/").status_code == 200


def test_openapi_documents_what_the_routes_answer(completer: Completer) -> None:
    with TestClient(create_app(completer)) as c:
        paths = c.get("/openapi.json").json()["paths"]
    faces = paths["/api/faces"]["post"]["responses"]
    assert {"200", "400", "408", "413", "503"} <= set(faces)
    sample = paths["/api/samples/{name}"]["get"]["responses"]
    assert "404" in sample and "422" not in sample
    assert all("422" not in op["responses"] for p in paths.values() for op in p.values())


def test_two_image_parts_are_refused(completer: Completer) -> None:
    with TestClient(create_app(completer)) as c:
        files = [("image", ("a.png", png(FACE), "image/png")), ("image", ("b.png", png(FACE), "image/png"))]
        r = c.post("/api/complete", files=files, data={"mask_type": "center"})
        assert r.status_code == 400 and r.json()["error"] == "the field 'image' is given twice"
        r = c.post("/api/faces", files=files)
        assert r.status_code == 400 and "twice" in r.json()["error"]


# -- 5. a busy port ----------------------------------------------------------------------------------


def test_busy_port_is_one_line_and_exit_1(tmp_path: Path) -> None:

    model = tiny_bundle(tmp_path / "m.pt", 32)
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    port = taken.getsockname()[1]
    try:
        r = CliRunner().invoke(main, ["serve", "--model", str(model), "--port", str(port)])
    finally:
        taken.close()
    assert r.exit_code == 1, r.output
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert lines == [f"error: port {port}: cannot listen on 127.0.0.1:{port} (already in use)"], r.stderr


# -- 6. messages name the API's fields -----------------------------------------------------------------


def test_messages_name_the_api_fields(completer: Completer) -> None:
    photo = np.random.default_rng(5).integers(0, 256, (90, 120, 3), dtype=np.uint8)  # no face in noise
    with TestClient(create_app(completer)) as c:
        r = c.post("/api/complete", files={"image": ("x.png", png(photo), "image/png")},
                   data={"mask_type": "center"})  # fmt: skip
        assert r.status_code == 400
        err = r.json()["error"]
        assert "no face found" in err and "the field box=x,y,w,h" in err and "aligned=true" in err
        assert "--" not in err
        # An empty generated hole, and a box larger than the image: said as such.
        r = c.post("/api/complete", files={"image": ("x.png", png(FACE), "image/png")},
                   data={"mask_type": "random:0.0001", "aligned": "true"})  # fmt: skip
        assert r.status_code == 400 and "draws no hole inside the 32x32 image" in r.json()["error"]
        r = c.post("/api/complete", files={"image": ("x.png", png(photo), "image/png")},
                   data={"mask_type": "center", "box": "0,0,2000,2000"})  # fmt: skip
        err = r.json()["error"]
        assert r.status_code == 400 and "larger than the image" in err and "outside every face" not in err


def test_the_page_names_its_own_controls() -> None:
    """The page's pageWords turns the API's field names into its own controls (run in node)."""
    import re
    import shutil
    import subprocess
    from importlib import resources

    from completion.photo import NO_FACE
    from completion.serve import api_message

    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the page's script cannot be run outside a browser")
    html = (resources.files("completion") / "web" / "index.html").read_text(encoding="utf-8")
    fn = re.search(r"function pageWords\(message\) \{.*?\n\}", html, re.S).group(0)
    api = api_message(NO_FACE.format(name="image"))
    said = subprocess.run([node, "-e", fn + "\nprocess.stdout.write(pageWords(process.argv[1]))", api],
                          capture_output=True, text=True, check=True, timeout=30).stdout  # fmt: skip
    assert "a face picked under Faces" in said and "open an aligned face crop" in said
    assert "field" not in said and "--" not in said and "=true" not in said


# -- 7. transparency is kept ----------------------------------------------------------------------------


def rgba_face() -> np.ndarray:
    alpha = np.tile(np.linspace(0, 255, SIZE).astype(np.uint8), (SIZE, 1))
    return np.dstack([FACE, alpha])


def test_alpha_is_kept_with_a_mask_type(completer: Completer) -> None:
    src = rgba_face()
    with TestClient(create_app(completer)) as c:
        r = c.post("/api/complete", files={"image": ("x.png", png(src), "image/png")},
                   data={"mask_type": "center", "aligned": "true"})  # fmt: skip
    assert r.status_code == 200, r.text
    out = Image.open(io.BytesIO(r.content))
    assert out.mode == "RGBA"
    got = np.asarray(out)
    assert np.array_equal(got[..., 3], src[..., 3])
    outside = np.ones((SIZE, SIZE), bool)
    outside[8:24, 8:24] = False
    assert np.array_equal(got[outside], src[outside])  # colour and alpha, not blended onto black


def test_cli_keeps_alpha_with_a_mask_type(tmp_path: Path) -> None:

    model = tiny_bundle(tmp_path / "m.pt", 32)
    src = rgba_face()
    Image.fromarray(src).save(tmp_path / "in.png")
    out = tmp_path / "out.png"
    r = CliRunner().invoke(main, ["complete", "--image", str(tmp_path / "in.png"), "--mask-type", "center",
                                  "--out", str(out), "--model", str(model), "--iterations", "1"])  # fmt: skip
    assert r.exit_code == 0, r.output
    got = np.asarray(Image.open(out))
    assert got.shape == (SIZE, SIZE, 4) and np.array_equal(got[..., 3], src[..., 3])
    assert np.array_equal(got[:4], src[:4])
