"""Start-up: the completion path imports neither torchvision nor torch._dynamo, and the stand-ins it
uses instead (ZAdam for torch.optim.Adam, completion.grid.make_grid for torchvision's) give the same
numbers."""

from __future__ import annotations

from pathlib import Path

import torch


def test_complete_imports_neither_torchvision_nor_dynamo(model: Path, face: Path, tmp_path: Path) -> None:
    import subprocess
    import sys

    code = (
        "import sys\nfrom completion.cli import main\n"
        f"main(['complete', '--image', {str(face)!r}, '--mask-type', 'center', '--out', "
        f"{str(tmp_path / 'o.png')!r}, '--model', {str(model)!r}, '--iterations', '2'],\n"
        "     standalone_mode=False)\n"
        "print(sorted(m for m in sys.modules if m.startswith(('torchvision', 'torch._dynamo'))))"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                       env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip().splitlines()[-1] == "[]"
    assert (tmp_path / "o.png").exists()


def test_zadam_is_torch_adam_bit_for_bit() -> None:
    from completion.complete import ZAdam

    g = torch.Generator().manual_seed(0)
    z0 = torch.rand(5, 100, generator=g) * 2 - 1
    grads = [torch.randn(5, 100, generator=g) * 10 ** (k % 4 - 2) for k in range(30)]
    a, b = z0.clone().requires_grad_(True), z0.clone().requires_grad_(True)
    ours, theirs = ZAdam(a, 0.01, (0.9, 0.999)), torch.optim.Adam([b], lr=0.01, betas=(0.9, 0.999))
    for grad in grads:
        for opt, z in ((ours, a), (theirs, b)):
            opt.zero_grad(set_to_none=True)
            (z * grad).sum().backward()
            opt.step()
            with torch.no_grad():
                z.clamp_(-1, 1)
        assert torch.equal(a, b)


def test_grid_matches_torchvision() -> None:
    from torchvision.utils import make_grid as tv_grid

    from completion.grid import make_grid

    x = torch.rand(7, 3, 8, 6) * 2 - 1
    for nrow in (1, 3, 7, 10):
        assert torch.equal(make_grid(x, nrow=nrow, padding=2, pad_value=1.0),
                           tv_grid(x, nrow=nrow, padding=2, pad_value=1.0))  # fmt: skip
