"""What the `completion serve` benchmarks share: a server in a subprocess, multipart requests with
the standard library only, and the test pictures (a 64x64 sample face, scikit-image's 512x512
astronaut with a hole over her eyes, and that astronaut in a 6000x4000 photo)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]


def png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def face64() -> tuple[np.ndarray, np.ndarray]:
    """A bundled 64x64 face and a hole (white = hole) over its centre."""
    image = np.asarray(Image.open(REPO / "samples" / "faces" / "face_01.png").convert("RGB"))
    hole = np.zeros((64, 64), np.uint8)
    hole[24:40, 16:48] = 255
    return image, hole


def photo512() -> tuple[np.ndarray, np.ndarray]:
    """scikit-image's astronaut (512x512) and a hole over her eyes (inside the face OpenCV finds)."""
    from skimage import data

    image = data.astronaut()
    hole = np.zeros(image.shape[:2], np.uint8)
    hole[90:115, 190:260] = 255
    return image, hole


def big_photo() -> bytes:
    """A PNG of the astronaut at 4000x4000 on a 6000x4000 canvas (one face found)."""
    from skimage import data

    canvas = np.full((4000, 6000, 3), 90, np.uint8)
    canvas[:, 1000:5000] = np.asarray(Image.fromarray(data.astronaut()).resize((4000, 4000), Image.BICUBIC))
    buf = io.BytesIO()
    Image.fromarray(canvas).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(*extra: str, threads: int = 2) -> tuple[subprocess.Popen, str]:
    """`completion serve` on a free local port; returns once /api/health answers."""
    port = free_port()
    cmd = [sys.executable, "-m", "completion", "-q", "serve", "--port", str(port), "--threads", str(threads)]
    proc = subprocess.Popen([*cmd, *extra], cwd=REPO)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/api/health", timeout=2) as r:
                json.load(r)
                return proc, url
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError("the server exited") from None
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("the server did not start")


def post(url: str, files: dict[str, bytes], fields: dict[str, object], timeout: float = 300):  # noqa: ANN201
    """POST multipart/form-data; returns (status, headers, body bytes)."""
    boundary = uuid.uuid4().hex
    parts = []
    for name, data in files.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{name}.png"\r\n'
            f"Content-Type: image/png\r\n\r\n".encode()
            + data
            + b"\r\n"
        )
    for name, value in fields.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        )
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    req = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": f"multipart/form-data; boundary={boundary}"}
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def rss_mib(pid: int) -> tuple[float, float]:
    """(current, peak) resident memory of a process in MiB, from /proc (Linux)."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def serving(*extra: str, threads: int = 2) -> Iterator[tuple[subprocess.Popen, str]]:
    """start_server for the length of a with block, stopped however it ends."""
    proc, url = start_server(*extra, threads=threads)
    try:
        yield proc, url
    finally:
        stop(proc)


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
