"""G for the CPU search with oneDNN weights packed once: the same function, bit for bit.

PyTorch's CPU convolution reorders its weights into oneDNN's blocked layout at every call, forward
and backward. G is frozen during the search, so that work is repeated 2 x layers x steps: for one
face under bf16 it was a third of a step (benchmarks/step_cost.py, `search_packed`). Here each
stride-2 transposed convolution (with the ReLU after it) and, under bf16, the latent projection
keep their packed weights per input shape, and compute the gradient to their input only (the
search needs no gradient of the weights). The kernels are the ones PyTorch itself calls, so values
and gradients are identical; tests compare them. Autocast does not reach these layers: a packed
net runs in the dtype it was cast to before packing."""

from __future__ import annotations

import copy
from collections import OrderedDict

import torch
from torch import nn

from .models import LatentProjection

_MKL = torch.ops.mkldnn
_CACHED_SHAPES = 4  # a search's batch (faces x restarts) changes seldom; bounds the cache's memory


def available(device: torch.device) -> bool:
    """Whether packing applies: a CPU with PyTorch's oneDNN kernels."""
    return (
        device.type == "cpu"
        and torch.backends.mkldnn.is_available()
        and torch.backends.mkldnn.enabled
        and hasattr(_MKL, "_convolution_transpose_pointwise")
    )


def _frozen(t: torch.Tensor) -> nn.Parameter:
    return nn.Parameter(t.detach().contiguous().clone(), requires_grad=False)


class _ShapeCache:
    """Packed weights by input shape, the most recent few (small LRU)."""

    def __init__(self) -> None:
        self._packs: OrderedDict[tuple[int, ...], tuple[torch.Tensor, torch.Tensor]] = OrderedDict()

    def __deepcopy__(self, memo: dict) -> _ShapeCache:
        return _ShapeCache()  # packs are remade on use (and oneDNN tensors do not deep-copy)

    def get(self, key: tuple[int, ...], make) -> tuple[torch.Tensor, torch.Tensor]:  # noqa: ANN001
        packs = self._packs.get(key)
        if packs is None:
            packs = self._packs[key] = make()
            while len(self._packs) > _CACHED_SHAPES:
                self._packs.popitem(last=False)
        else:
            self._packs.move_to_end(key)
        return packs


class PackedConvTranspose2d(nn.Module):
    """A frozen ConvTranspose2d, optionally with the ReLU after it fused in. Forward: oneDNN's
    transposed convolution; backward to the input: the convolution with the same weights (its
    adjoint), each with weights packed for the shape once."""

    def __init__(self, conv: nn.ConvTranspose2d, relu: bool) -> None:
        super().__init__()
        self.weight = _frozen(conv.weight)
        self.bias = None if conv.bias is None else _frozen(conv.bias)
        self.stride, self.padding = list(conv.stride), list(conv.padding)
        self.output_padding, self.dilation = list(conv.output_padding), list(conv.dilation)
        self.groups = conv.groups
        self.attr = "relu" if relu else "none"
        self._cache = _ShapeCache()

    def packs(self, shape: torch.Size) -> tuple[torch.Tensor, torch.Tensor]:
        def make() -> tuple[torch.Tensor, torch.Tensor]:
            w = self.weight
            forward = _MKL._reorder_convolution_transpose_weight(
                w, self.padding, self.output_padding, self.stride, self.dilation, self.groups, list(shape)
            )
            # The output's shape: the input of the adjoint convolution.
            sides = zip(
                shape[2:],
                self.stride,
                self.padding,
                self.dilation,
                w.shape[2:],
                self.output_padding,
                strict=True,
            )
            out = [shape[0], w.shape[1] * self.groups] + [
                (n - 1) * s - 2 * p + d * (k - 1) + o + 1 for n, s, p, d, k, o in sides
            ]
            backward = _MKL._reorder_convolution_weight(
                w, self.padding, self.stride, self.dilation, self.groups, out
            )
            return forward, backward

        return self._cache.get((*shape, self.weight.dtype.itemsize), make)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _ConvTranspose.apply(x.contiguous(memory_format=torch.channels_last), self)


class _ConvTranspose(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, m: PackedConvTranspose2d) -> torch.Tensor:  # noqa: ANN001
        forward, backward = m.packs(x.shape)
        y = _MKL._convolution_transpose_pointwise(
            x, forward, m.bias, m.padding, m.output_padding, m.stride, m.dilation, m.groups, m.attr, [], ""
        )
        ctx.m, ctx.backward_weight = m, backward
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # noqa: ANN001
        m = ctx.m
        if m.attr == "relu":
            (y,) = ctx.saved_tensors
            grad = torch.ops.aten.threshold_backward(grad, y, 0)
        grad = grad.contiguous(memory_format=torch.channels_last)
        dx = _MKL._convolution_pointwise(
            grad, ctx.backward_weight, None, m.padding, m.stride, m.dilation, m.groups, "none", [], ""
        )
        return dx, None


class PackedLatentProjection(nn.Module):
    """LatentProjection (G's first layer as a matrix multiply) with its weights packed for
    oneDNN's matmul, forward and backward. Used under bf16 only, where it matches `addmm` bit for
    bit; in fp32 `addmm` runs MKL's kernel, which sums in another order."""

    def __init__(self, layer: LatentProjection) -> None:
        super().__init__()
        self.shape = layer.shape
        w = layer.weight.detach()  # (nz, K*K*C)
        self.weight = _frozen(w.t())  # linear's (out, in)
        self.weight_t = _frozen(w)  # the adjoint's (out, in)
        self.bias = _frozen(layer.bias)
        self._cache = _ShapeCache()

    def packs(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        def make() -> tuple[torch.Tensor, torch.Tensor]:
            return _MKL._reorder_linear_weight(self.weight, n), _MKL._reorder_linear_weight(self.weight_t, n)

        return self._cache.get((n,), make)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        z = z.reshape(z.shape[0], -1).contiguous()
        out = _Linear.apply(z, self)
        return out.view(z.shape[0], *self.shape).permute(0, 3, 1, 2)


class _Linear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z: torch.Tensor, m: PackedLatentProjection) -> torch.Tensor:  # noqa: ANN001
        forward, backward = m.packs(z.shape[0])
        ctx.backward_weight = backward
        return _MKL._linear_pointwise(z, forward, m.bias, "none", [], "")

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # noqa: ANN001
        return _MKL._linear_pointwise(grad.contiguous(), ctx.backward_weight, None, "none", [], ""), None


def prepare(net: nn.Module, device: torch.device) -> nn.Module:
    """pack_generator(net) where packing applies (available), else net itself."""
    return pack_generator(net) if available(device) else net


def pack_generator(net: nn.Module) -> nn.Module:
    """A copy of a search generator (models.search_generator, in its final dtype) with its layers
    packed where that keeps the arithmetic identical; other layers are kept as they are."""
    net = copy.deepcopy(net)
    seq = getattr(net, "main", None)
    if not isinstance(seq, nn.Sequential):
        return net
    dtype = next(net.parameters()).dtype
    layers: list[nn.Module] = []
    mods = list(seq)
    i = 0
    while i < len(mods):
        mod = mods[i]
        if isinstance(mod, nn.ConvTranspose2d):
            # The ReLU after it (past folded batch norms, now Identity) is fused in.
            j = i + 1
            while j < len(mods) and isinstance(mods[j], nn.Identity):
                j += 1
            relu = j < len(mods) and isinstance(mods[j], nn.ReLU)
            layers.append(PackedConvTranspose2d(mod, relu))
            i = j + 1 if relu else i + 1
            continue
        if isinstance(mod, LatentProjection) and dtype == torch.bfloat16:
            mod = PackedLatentProjection(mod)
        layers.append(mod)
        i += 1
    net.main = nn.Sequential(*layers)
    return net.requires_grad_(False)
