"""The latent search at model resolution (Yeh et al. 2017; Amos 2016): z initialisation, the
objective, Adam on z (ZAdam) and the optimisation, on model-size tensors only.

For images y in [-1, 1] and masks M (1 = known), find z in [-1, 1]^nz minimising

    ||W * (G(z) - y)||_1  +  lam * perceptual(D(G(z)))

with Adam, clipping z after every step. Many images (and restarts) are optimised together in one
tensor batch: G and D are in eval mode, so every image's loss depends only on its own z."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from . import packed
from .masks import hole_depth, yeh_weights
from .models import in_precision
from .options import CompletionOptions

StepCallback = Callable[[int, torch.Tensor], None]


@dataclass
class Optimised:
    """Result of optimising a batch at model resolution."""

    generated: torch.Tensor  # (N, 3, S, S) G(z*) in [-1, 1]
    z: torch.Tensor  # (N, nz)
    loss: torch.Tensor  # (N,) final objective of the kept restart
    steps: torch.Tensor  # (N,) Adam steps applied to the kept z (fewer after an early stop)


class ZAdam:
    """torch.optim.Adam for the one tensor z, with the arithmetic of torch's single-tensor (CPU)
    implementation operation for operation, so results are bit-identical (tests check this).

    Why not torch.optim.Adam: constructing any torch optimiser imports torch._dynamo, which
    costs 1-2 s, a third of a one-image `completion complete` on a 2-core CPU."""

    def __init__(self, z: torch.Tensor, lr: float, betas: tuple[float, float], eps: float = 1e-8) -> None:
        self.z, self.lr, self.eps = z, lr, eps
        self.beta1, self.beta2 = betas
        self.exp_avg = torch.zeros_like(z, memory_format=torch.preserve_format)
        self.exp_avg_sq = torch.zeros_like(z, memory_format=torch.preserve_format)
        self.steps = 0.0  # torch counts in a float32 tensor and uses its value as a Python float

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.z.grad = None

    @torch.no_grad()
    def step(self) -> None:
        grad = self.z.grad
        if grad is None:
            return
        self.steps += 1
        self.exp_avg.lerp_(grad, 1 - self.beta1)
        self.exp_avg_sq.mul_(self.beta2).addcmul_(grad, grad, value=1 - self.beta2)
        bias_correction1 = 1 - self.beta1**self.steps
        bias_correction2 = 1 - self.beta2**self.steps
        denom = (self.exp_avg_sq.sqrt() / bias_correction2**0.5).add_(self.eps)
        self.z.addcdiv_(self.exp_avg, denom, value=-(self.lr / bias_correction1))


class _WeightedL1(torch.autograd.Function):
    """Per-sample sum of w * |g - y| (g cast to float32) as one autograd node instead of six (the
    cast, difference, abs, product, flatten, sum): the same value and the same gradient, w times
    the sign of g - y cast back to g's dtype, with less of autograd's per-node cost (0.2 ms of a
    one-face step of 3.5-3.8 ms)."""

    @staticmethod
    def forward(ctx, g: torch.Tensor, y: torch.Tensor, w: torch.Tensor) -> torch.Tensor:  # noqa: ANN001
        d = g.float() - y
        ctx.save_for_backward(d, w)
        ctx.dtype = g.dtype
        return (w * d.abs()).flatten(1).sum(1)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:  # noqa: ANN001
        d, w = ctx.saved_tensors
        # In autograd's order: the sum's gradient times w, then times the sign of the difference.
        return ((grad.view(-1, 1, 1, 1) * w) * d.sgn()).to(ctx.dtype), None, None


@dataclass
class Search:
    """One search's networks and options (options as Completer resolved them: init and precision
    already decided). `generator` is the one the search runs (Completer folds its batch norm)."""

    options: CompletionOptions
    generator: nn.Module
    discriminator: nn.Module
    encoder: nn.Module | None
    nz: int
    device: torch.device
    # The generator the steps run, in the search's precision: `generator` in fp32; under bf16 a
    # copy with its weights cast once (autocast would cast them again at every step, as it caches
    # only weights that need a gradient) but for the latent projection, kept in fp32
    # (models.in_precision); on the CPU with oneDNN's weights packed (packed.py; the Completer
    # packs `generator` too), the same arithmetic bit for bit. Made here when not given; the final
    # G(z*) is always rendered by `generator`.
    step_generator: nn.Module | None = None

    def __post_init__(self) -> None:
        if self.step_generator is None:
            step = self.generator
            if self.options.precision == "bf16":
                step = packed.prepare(in_precision(step, torch.bfloat16), self.device)
            self.step_generator = step
        self._step_dtype = next(self.step_generator.parameters()).dtype

    def weights(self, m: torch.Tensor) -> torch.Tensor:
        if self.options.weighting == "plain":
            return m
        return yeh_weights(m, self.options.window)

    def initial_z(self, y: torch.Tensor, m: torch.Tensor, seeds: list[int] | None = None) -> torch.Tensor:
        """Starting z for every (image, restart), (N * R, nz).

        Each image draws its restarts from its own generator seeded with its seed (options.seed
        unless `seeds` gives one per image), so its result does not depend on which other images
        share the batch, or where it sits in it."""
        r, nz = self.options.restarts, self.nz
        seeds = [self.options.seed] * y.shape[0] if seeds is None else list(seeds)
        draws = {}
        for s in set(seeds):
            gen = torch.Generator().manual_seed(s)
            restarts = torch.rand(r, nz, generator=gen) * 2 - 1
            # Drawn after the restarts, so that a seed's restarts are what they were before.
            shift = torch.randn(nz, generator=gen) * self.options.spread if s != 0 else torch.zeros(nz)
            draws[s] = (restarts, shift)
        z = torch.cat([draws[s][0] for s in seeds])
        if self.options.init == "encoder":
            with torch.no_grad():
                ze = self.encoder(y, m).cpu()
            # Restart 0 starts at the encoder's estimate (moved by the seed's shift), the others
            # in a small ball around it.
            jitter = (z * 0.25).view(-1, r, nz)
            jitter[:, 0] = 0
            shift = torch.stack([draws[s][1] for s in seeds]).repeat_interleave(r, 0)
            z = (ze.repeat_interleave(r, 0) + jitter.view(-1, nz) + shift).clamp(-1, 1)
        return z

    def step_caps(self, m: torch.Tensor) -> torch.Tensor:
        """Adam steps each image may take, (N,): options.iterations, or none for a hole at least
        options.skip_depth deep when the search starts from the encoder (masks.hole_depth)."""
        o = self.options
        caps = torch.full((m.shape[0],), o.iterations, dtype=torch.long)
        if o.init == "encoder" and o.skip_depth < 1:
            known = m[:, 0].cpu().numpy() > 0.5
            deep = torch.tensor([hole_depth(k) >= o.skip_depth for k in known])
            caps[deep] = 0
        return caps

    def objective(
        self, z: torch.Tensor, y: torch.Tensor, w: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-sample loss and G(z)."""
        # bf16 runs the networks at about twice the speed on CPUs with bf16 units; the loss and z
        # stay float32. G is given in the search's precision (step_generator), D runs under autocast.
        g = self.step_generator(z.to(self._step_dtype))
        with torch.autocast(z.device.type, dtype=torch.bfloat16, enabled=self.options.precision == "bf16"):
            logits = self.discriminator(g) if self.options.lam > 0 else None
        loss = _WeightedL1.apply(g, y, w)
        g = g.detach().float()
        lam = self.options.lam
        if logits is not None:
            logits = logits.float()
            # log(1 - sigmoid(l)) = -softplus(l);  -log sigmoid(l) = softplus(-l)
            perceptual = -F.softplus(logits) if self.options.perceptual == "log1m" else F.softplus(-logits)
            loss = loss + lam * perceptual
        return loss, g

    def optimise(
        self,
        y: torch.Tensor,
        m: torch.Tensor,
        callback: StepCallback | None = None,
        every: int = 0,
        seeds: list[int] | None = None,
    ) -> Optimised:
        """y: (N, 3, S, S) in [-1, 1]; m: (N, 1, S, S), 1 = known; seeds: one per image (default:
        options.seed for all). Returns the best restart each."""
        o = self.options
        device = self.device
        n, r = y.shape[0], o.restarts
        y, m = y.to(device), m.to(device)
        z = self.initial_z(y, m, seeds).to(device)
        yr = y.repeat_interleave(r, 0)
        w = self.weights(m).repeat_interleave(r, 0)
        z.requires_grad_(True)
        # On the CPU the same arithmetic without torch.optim (see ZAdam); elsewhere torch's own.
        opt = (
            ZAdam(z, o.lr, (o.beta1, o.beta2))
            if z.device.type == "cpu"
            else torch.optim.Adam([z], lr=o.lr, betas=(o.beta1, o.beta2))
        )
        best_loss = torch.full((n * r,), float("inf"), device=device)
        best_z = z.detach().clone()
        # Early stop freezes each (image, restart) on its own once it stalls, so that an image's
        # result does not depend on the others in its batch; the loop ends when all are frozen.
        # A frozen z keeps its loss, so it stays stalled: `frozen` needs no memory of its own.
        early = o.early_stop > 0
        caps = self.step_caps(m).repeat_interleave(r, 0)
        last = int(caps.max())
        # Per-image freezing only where some image stops before the others (an early stop, a deep
        # hole beside shallow ones): otherwise the loop needs no mask and no device sync per step.
        freeze = early or bool((caps < last).any())
        caps = caps.to(device)
        stalled = torch.zeros(n * r, dtype=torch.long, device=device)
        steps = torch.zeros(n * r, dtype=torch.long, device=device)
        frozen = steps >= caps
        for it in range(last + 1):
            loss, g = self.objective(z, yr, w)
            with torch.no_grad():
                if early:
                    stalled = torch.where(loss < best_loss * (1 - o.early_stop), 0, stalled + 1)
                if freeze:
                    frozen = (stalled >= o.patience) | (steps >= caps)
                better = loss < best_loss
                best_loss = torch.where(better, loss, best_loss)
                best_z = torch.where(better[:, None], z.detach(), best_z)
            if callback is not None and every and it % every == 0:
                callback(it, g)  # detached by objective
            if it == last or (freeze and bool(frozen.all())):
                break  # the last pass only scores the final z
            opt.zero_grad(set_to_none=True)
            loss.sum().backward()
            before = z.detach()[frozen].clone() if freeze else None
            opt.step()
            steps += ~frozen
            with torch.no_grad():
                if before is not None:
                    z[frozen] = before
                z.clamp_(-1, 1)
        # Keep, for each image, the restart with the lowest loss.
        best_loss = best_loss.view(n, r)
        pick = best_loss.argmin(1)
        rows = torch.arange(n, device=device) * r + pick
        z_star = best_z[rows]
        with torch.no_grad():
            generated = self.generator(z_star).contiguous()
        loss = best_loss.gather(1, pick[:, None]).squeeze(1)
        return Optimised(generated, z_star.cpu(), loss.cpu(), steps[rows].cpu())
