"""G for the CPU search: oneDNN weights packed once and one autograd node for the whole network.
The same function and gradient on z, bit for bit (tests compare them).

Two costs of a one-face search step that are not arithmetic (benchmarks/step_cost.py):
- PyTorch's CPU convolution reorders its weights into oneDNN's blocked layout at every call,
  forward and backward. G is frozen during the search, so each layer here keeps its packed
  weights per input shape (a third of a bf16 step for one face).
- Autograd's engine walks a dozen nodes per step. Here G is one node: its forward saves the few
  activations its backward needs, and its backward runs the adjoint of each layer in turn (about
  a quarter of what was left). It computes the gradient to z only: the search needs none for the
  weights.

The kernels are the ones PyTorch itself calls (addmm for the latent projection; oneDNN's
transposed convolution, and for its adjoint the convolution primitive that oneDNN itself runs as a
transposed convolution's backward), so values and gradients are those of
models.search_generator. Autocast does not reach this network: it runs in the dtype it was cast
to. Only the DCGAN shape is packed (latent projection, ReLU, transposed convolutions with ReLU
between them, tanh); any other network is left as it is."""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from collections.abc import Callable

import torch
from torch import nn

from .models import LatentProjection

_MKL = torch.ops.mkldnn
_ATEN = torch.ops.aten
_CACHED_SHAPES = 4  # a search's batch (faces x restarts) changes seldom; bounds the cache's memory
_CL = torch.channels_last
Packs = tuple[torch.Tensor, torch.Tensor]


def available(device: torch.device) -> bool:
    """Whether packing applies: a CPU with PyTorch's oneDNN kernels, which give here what the
    plain layers give (checked once per process on a small layer)."""
    return (
        device.type == "cpu"
        and torch.backends.mkldnn.is_available()
        and torch.backends.mkldnn.enabled
        and hasattr(_MKL, "_convolution_transpose_pointwise")
        and _kernels_agree()
    )


@functools.cache
def _kernels_agree() -> bool:
    """A small packed layer's value and input gradient against PyTorch's own: False where a build
    lacks a kernel or computes another thing (a fallback, not an error)."""
    gen = torch.Generator().manual_seed(0)
    conv = nn.ConvTranspose2d(8, 4, 4, 2, 1).requires_grad_(False)
    with torch.no_grad():
        conv.weight.copy_(torch.randn(conv.weight.shape, generator=gen))
    x = torch.randn(2, 8, 4, 4, generator=gen).contiguous(memory_format=_CL).requires_grad_(True)
    grad = torch.randn(2, 4, 8, 8, generator=gen)
    try:
        up = _Up(conv, relu=True)
        packs = up.pack(list(x.shape))
        y = up.forward(x.detach(), packs)
        ref = torch.relu(conv(x))
        (ref * grad).sum().backward()  # a scalar: autograd's non-scalar path imports torch.fx (0.7 s)
        dx = up.backward(y, grad, packs)
    except (RuntimeError, NotImplementedError):
        return False
    return torch.allclose(y, ref, atol=1e-4) and torch.allclose(dx, x.grad, atol=1e-4)


def _frozen(t: torch.Tensor) -> nn.Parameter:
    return nn.Parameter(t.detach().contiguous().clone(), requires_grad=False)


class _ShapeCache:
    """Every layer's packed weights by batch size and dtype, the most recent few (a small LRU)."""

    def __init__(self) -> None:
        self._packs: OrderedDict[tuple, list[Packs]] = OrderedDict()
        self._lock = threading.Lock()  # a Completer may be shared by threads

    def __deepcopy__(self, memo: dict) -> _ShapeCache:
        return _ShapeCache()  # packs are remade on use (and oneDNN tensors do not deep-copy)

    def get(self, key: tuple, make: Callable[[], list[Packs]]) -> list[Packs]:
        with self._lock:
            packs = self._packs.get(key)
            if packs is None:
                packs = self._packs[key] = make()
                while len(self._packs) > _CACHED_SHAPES:
                    self._packs.popitem(last=False)
            else:
                self._packs.move_to_end(key)
            return packs


class _Latent(LatentProjection):
    """LatentProjection with its ReLU fused into the projection, and the projection's adjoint."""

    def __init__(self, layer: LatentProjection) -> None:
        nn.Module.__init__(self)
        self.shape = layer.shape  # (K, K, C): columns in channels-last order
        self.weight = _frozen(layer.weight)  # (nz, K*K*C)
        self.bias = _frozen(layer.bias)
        self.out_dtype = layer.out_dtype

    def image_shape(self, n: int) -> list[int]:
        k, k2, c = self.shape
        return [n, c, k, k2]

    def project(self, z: torch.Tensor) -> torch.Tensor:
        """(N, K*K*C) activations after the ReLU, in the weights' dtype."""
        return super().project(z).relu_()

    def backward(self, h: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        """Gradient to z, given the activations h and the gradient on them."""
        return _ATEN.threshold_backward(grad.to(h.dtype), h, 0).mm(self.weight.t())


class _Up(nn.Module):
    """A stride-2 ConvTranspose2d (batch norm folded in), with the ReLU after it fused in or not.
    Forward: oneDNN's transposed convolution; its adjoint: the convolution with the same weights.
    Both take the layer's packed weights for the batch's shape (pack)."""

    def __init__(self, conv: nn.ConvTranspose2d, relu: bool) -> None:
        super().__init__()
        self.weight = _frozen(conv.weight)
        self.bias = None if conv.bias is None else _frozen(conv.bias)
        self.stride, self.padding = list(conv.stride), list(conv.padding)
        self.output_padding, self.dilation = list(conv.output_padding), list(conv.dilation)
        self.groups = conv.groups
        self.relu = relu
        # The kernels' arguments after the input, weights and bias, fixed for the layer.
        self._forward_args = (
            self.padding,
            self.output_padding,
            self.stride,
            self.dilation,
            self.groups,
            "relu" if relu else "none",
            [],
            "",
        )
        self._adjoint_args = (self.padding, self.stride, self.dilation, self.groups, "none", [], "")

    def output_shape(self, shape: list[int]) -> list[int]:
        w, g = self.weight, self.groups
        sides = zip(
            shape[2:], self.stride, self.padding, self.dilation, w.shape[2:], self.output_padding, strict=True
        )
        return [shape[0], w.shape[1] * g] + [
            (n - 1) * s - 2 * p + d * (k - 1) + o + 1 for n, s, p, d, k, o in sides
        ]

    def pack(self, shape: list[int]) -> Packs:
        """The weights in oneDNN's layout for an input of `shape`: (forward, adjoint)."""
        w, g = self.weight, self.groups
        forward = _MKL._reorder_convolution_transpose_weight(
            w, self.padding, self.output_padding, self.stride, self.dilation, g, shape
        )
        # The adjoint's input is this layer's output.
        adjoint = _MKL._reorder_convolution_weight(
            w, self.padding, self.stride, self.dilation, g, self.output_shape(shape)
        )
        return forward, adjoint

    def forward(self, x: torch.Tensor, packs: Packs) -> torch.Tensor:
        return _MKL._convolution_transpose_pointwise(x, packs[0], self.bias, *self._forward_args)

    def backward(self, y: torch.Tensor, grad: torch.Tensor, packs: Packs) -> torch.Tensor:
        """Gradient to the input, given the output y and the gradient on it."""
        if self.relu:
            grad = _ATEN.threshold_backward(grad, y, 0)
        grad = grad.contiguous(memory_format=_CL)
        return _MKL._convolution_pointwise(grad, packs[1], None, *self._adjoint_args)


class PackedGenerator(nn.Module):
    """A frozen search generator as one autograd node (see the module's docstring)."""

    def __init__(self, latent: LatentProjection, ups: list[tuple[nn.ConvTranspose2d, bool]]) -> None:
        super().__init__()
        self.latent = _Latent(latent)
        self.ups = nn.ModuleList(_Up(conv, relu) for conv, relu in ups)
        self._cache = _ShapeCache()

    def packs(self, n: int) -> list[Packs]:
        """Every layer's packed weights for a batch of n (made on first use, then cached)."""

        def make() -> list[Packs]:
            shape, out = self.latent.image_shape(n), []
            for up in self.ups:
                out.append(up.pack(shape))
                shape = up.output_shape(shape)
            return out

        return self._cache.get((n, self.ups[0].weight.dtype), make)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return _Chain.apply(z.reshape(z.shape[0], -1).contiguous(), self)


class _Chain(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z: torch.Tensor, net: PackedGenerator) -> torch.Tensor:  # noqa: ANN001
        packs = net.packs(z.shape[0])
        h = net.latent.project(z)
        x, outs = net.latent.image(h), []
        for up, p in zip(net.ups, packs, strict=True):
            x = up.forward(x, p)
            outs.append(x)
        g = torch.tanh(x)
        ctx.net, ctx.packs = net, packs
        ctx.save_for_backward(h, g, *outs)
        return g

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # noqa: ANN001
        net = ctx.net
        h, g, *outs = ctx.saved_tensors
        grad = _ATEN.tanh_backward(grad, g)
        for up, y, p in zip(reversed(net.ups), reversed(outs), reversed(ctx.packs), strict=True):
            grad = up.backward(y, grad, p)
        grad = grad.permute(0, 2, 3, 1).reshape(h.shape)  # channels-last memory: a view
        return net.latent.backward(h, grad), None


def prepare(net: nn.Module, device: torch.device) -> nn.Module:
    """pack_generator(net) where packing applies (available), else net itself."""
    return pack_generator(net) if available(device) else net


def pack_generator(net: nn.Module) -> nn.Module:
    """A PackedGenerator computing what a search generator (models.search_generator, in any
    dtype) computes; `net` itself when it is not of the DCGAN shape, or is packed already."""
    seq = getattr(net, "main", None)
    layers = [m for m in seq if not isinstance(m, nn.Identity)] if isinstance(seq, nn.Sequential) else []
    if len(layers) < 4 or not isinstance(layers[0], LatentProjection) or not isinstance(layers[1], nn.ReLU):
        return net
    if not isinstance(layers[-1], nn.Tanh):
        return net
    ups, rest = [], layers[2:-1]
    for i, m in enumerate(rest):
        if isinstance(m, nn.ReLU):
            continue
        relu = i + 1 < len(rest) and isinstance(rest[i + 1], nn.ReLU)
        if not isinstance(m, nn.ConvTranspose2d) or relu == (i + 1 == len(rest)):
            return net  # only ConvT+ReLU stages and a last ConvT before the tanh
        ups.append((m, relu))
    return PackedGenerator(layers[0], ups)  # frozen, each layer in its own dtype (models.in_precision)
