"""Pure-PyTorch versions of the StyleGAN2 custom ops EG3D relies on.

NVlabs ships CUDA kernels for these (``bias_act``, ``upfirdn2d``, ``conv2d_resample``)
plus slow reference paths; only the behaviour matters for loading their weights, so
here every op is written with standard ``torch`` calls and runs on any device. The
conventions are StyleGAN2's:

* filters are FIR kernels prepared by :func:`setup_filter` (normalised to unit DC gain,
  an outer product when 1-D taps are given);
* ``upfirdn2d`` = insert zeros (``up``), pad (negative = crop), *convolve* with the
  filter, keep every ``down``-th pixel;
* convolution weights are applied as correlation (``torch.nn.functional.conv2d``),
  except where ``flip_weight=False`` asks for true convolution.

Shapes: ``x [N, C, H, W]``; weights ``[O, I, kh, kw]``.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

ACTIVATION_GAINS: dict[str, float] = {"linear": 1.0, "lrelu": math.sqrt(2.0), "relu": math.sqrt(2.0)}
"""Default gain applied after each activation (StyleGAN2 keeps activations at unit variance)."""
LRELU_SLOPE: float = 0.2
"""Negative slope of StyleGAN2's leaky ReLU."""


def bias_act(x: Tensor, bias: Tensor | None = None, act: str = "linear", gain: float | None = None,
             clamp: float | None = None, dim: int = 1) -> Tensor:
    """Add a bias along ``dim``, apply an activation, scale by ``gain``, clamp to ``+-clamp``.

    Args:
        x: any tensor.
        bias: ``[x.shape[dim]]`` or ``None``.
        act: ``linear``, ``relu`` or ``lrelu`` (slope 0.2).
        gain: output scale; the activation's default gain (``sqrt(2)`` for the ReLUs) when ``None``.
        clamp: symmetric clamp of the result, ``None`` = no clamp.
        dim: the channel dimension of ``x``.
    """
    if act not in ACTIVATION_GAINS:
        raise ValueError(f"unknown activation {act!r}; expected one of {sorted(ACTIVATION_GAINS)}")
    if bias is not None:
        shape = [1] * x.ndim
        shape[dim] = -1
        x = x + bias.to(x.dtype).reshape(shape)
    if act == "lrelu":
        x = F.leaky_relu(x, LRELU_SLOPE)
    elif act == "relu":
        x = F.relu(x)
    gain = ACTIVATION_GAINS[act] if gain is None else float(gain)
    if gain != 1.0:
        x = x * gain
    if clamp is not None and clamp >= 0:
        x = x.clamp(-clamp, clamp)
    return x


def setup_filter(taps: Sequence[float] | Tensor, gain: float = 1.0) -> Tensor:
    """A 2-D FIR filter ``[k, k]`` from 1-D ``taps``: outer product, normalised to sum 1, times ``gain``.

    (StyleGAN2 keeps 1-D taps separable only from 8 taps on; EG3D's ``[1, 3, 3, 1]`` is a 4x4 kernel.)
    """
    f = torch.as_tensor(taps, dtype=torch.float32)
    if f.ndim == 1:
        f = torch.outer(f, f)
    if f.ndim != 2 or f.numel() == 0:
        raise ValueError(f"filter taps must be 1-D or 2-D and non-empty, got shape {tuple(f.shape)}")
    return f / f.sum() * gain


def _padding4(padding: int | Sequence[int]) -> tuple[int, int, int, int]:
    """``int`` / ``[x, y]`` / ``[x0, x1, y0, y1]`` -> ``(x0, x1, y0, y1)``."""
    if isinstance(padding, int):
        return padding, padding, padding, padding
    values = [int(p) for p in padding]
    if len(values) == 2:
        return values[0], values[0], values[1], values[1]
    if len(values) == 4:
        return values[0], values[1], values[2], values[3]
    raise ValueError(f"padding must be an int or 2 or 4 ints, got {padding!r}")


def upfirdn2d(x: Tensor, f: Tensor | None, up: int = 1, down: int = 1, padding: int | Sequence[int] = 0,
              flip_filter: bool = False, gain: float = 1.0) -> Tensor:
    """Upsample (zero insertion), pad, FIR-filter and downsample every channel of ``x``.

    Args:
        x: ``[N, C, H, W]``.
        f: ``[kh, kw]`` filter (:func:`setup_filter`), or ``None`` for the identity.
        up, down: integer factors.
        padding: pixels added to the upsampled image (negative crops): int, ``[x, y]`` or ``[x0, x1, y0, y1]``.
        flip_filter: correlate instead of convolve.
        gain: overall scale (applied to the 2-D filter).

    Returns:
        ``[N, C, H', W']`` with ``H' = (H * up + y0 + y1 - kh) // down + 1`` (same for ``W``).
    """
    if f is None:
        f = torch.ones(1, 1, dtype=torch.float32, device=x.device)
    n, c, h, w = x.shape
    x0, x1, y0, y1 = _padding4(padding)
    if up > 1:
        x = x.reshape(n, c, h, 1, w, 1)
        x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1])
        x = x.reshape(n, c, h * up, w * up)
    x = F.pad(x, [max(x0, 0), max(x1, 0), max(y0, 0), max(y1, 0)])
    x = x[:, :, max(-y0, 0): x.shape[2] - max(-y1, 0), max(-x0, 0): x.shape[3] - max(-x1, 0)]
    kernel = (f * gain).to(device=x.device, dtype=x.dtype)
    if not flip_filter:
        kernel = kernel.flip([0, 1])  # conv2d correlates; flipping makes it a convolution
    kernel = kernel[None, None].expand(c, 1, *kernel.shape)
    x = F.conv2d(x, kernel, groups=c)
    return x[:, :, ::down, ::down] if down > 1 else x


def upsample2d(x: Tensor, f: Tensor, up: int = 2) -> Tensor:
    """FIR-filtered ``up``-times upsampling that keeps the image centred: ``[N,C,H,W] -> [N,C,H*up,W*up]``."""
    kh, kw = f.shape
    padding = [(kw + up - 1) // 2, (kw - up) // 2, (kh + up - 1) // 2, (kh - up) // 2]
    return upfirdn2d(x, f, up=up, padding=padding, gain=up * up)


def conv2d_resample(x: Tensor, w: Tensor, f: Tensor | None = None, up: int = 1, padding: int = 0,
                    flip_weight: bool = True, groups: int = 1) -> Tensor:
    """Convolution with optional FIR-filtered ``up``-sampling (StyleGAN2 ``conv2d_resample``, no ``down``).

    ``up == 1`` is a plain ``conv2d`` with symmetric ``padding``. ``up > 1`` runs a strided
    transposed convolution (``flip_weight=False``: the weight is used as a true convolution
    kernel) followed by the FIR filter ``f``, padded so the output is exactly ``up`` times
    larger for ``padding = k // 2``. :func:`conv2d_resample_reference` is the slow
    zero-insertion version the tests compare against.

    Args:
        x: ``[N, I, H, W]``; w: ``[O, I / groups, k, k]``; f: filter for ``up > 1``; groups: as in ``conv2d``.
    """
    if up == 1:
        if not flip_weight:
            w = w.flip([2, 3])
        return F.conv2d(x, w, padding=padding, groups=groups)
    if f is None:
        raise ValueError("conv2d_resample: upsampling needs a filter")
    kh, kw = w.shape[2:]
    fh, fw = f.shape
    px0 = padding + (fw + up - 1) // 2 - (kw - 1)
    px1 = padding + (fw - up) // 2 - (kw - up)
    py0 = padding + (fh + up - 1) // 2 - (kh - 1)
    py1 = padding + (fh - up) // 2 - (kh - up)
    pxt, pyt = max(min(-px0, -px1), 0), max(min(-py0, -py1), 0)
    out_channels, in_per_group = w.shape[:2]
    weight = w.reshape(groups, out_channels // groups, in_per_group, kh, kw).transpose(1, 2)
    weight = weight.reshape(groups * in_per_group, out_channels // groups, kh, kw)  # conv_transpose2d layout
    if flip_weight:
        weight = weight.flip([2, 3])
    x = F.conv_transpose2d(x, weight, stride=up, padding=[pyt, pxt], groups=groups)
    return upfirdn2d(x, f, padding=[px0 + pxt, px1 + pxt, py0 + pyt, py1 + pyt], gain=up * up)


def conv2d_resample_reference(x: Tensor, w: Tensor, f: Tensor, up: int, padding: int, flip_weight: bool = True) -> Tensor:
    """Slow equivalent of :func:`conv2d_resample` with ``up > 1``: zero-insert + filter, then convolve."""
    kh, kw = w.shape[2:]
    fh, fw = f.shape
    pad = [padding + (fw + up - 1) // 2, padding + (fw - up) // 2, padding + (fh + up - 1) // 2, padding + (fh - up) // 2]
    x = upfirdn2d(x, f, up=up, padding=pad, gain=up * up)
    if not flip_weight:
        w = w.flip([2, 3])
    return F.conv2d(x, w)


def normalize_2nd_moment(x: Tensor, dim: int = 1, eps: float = 1e-8) -> Tensor:
    """Scale ``x`` to unit mean square along ``dim`` (StyleGAN's pixel norm of latents)."""
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


def modulated_conv2d(x: Tensor, weight: Tensor, styles: Tensor, noise: Tensor | None = None, up: int = 1,
                     padding: int = 0, resample_filter: Tensor | None = None, demodulate: bool = True,
                     flip_weight: bool = True) -> Tensor:
    """StyleGAN2's modulated convolution, as one grouped convolution with per-sample weights.

    Each sample ``n`` is convolved with ``w[o, i] * s[n, i] * d[n, o]``: input styles
    ``s [N, I]`` and demodulation ``d[n, o] = 1 / sqrt(sum_{i,k} (w[o,i,k] s[n,i])^2 + 1e-8)``;
    ``noise`` is added last. (Equal to scaling the activations before and after a shared
    convolution, EG3D's other form; the grouped form is faster on CPU.)

    Args:
        x: ``[N, I, H, W]``; weight: ``[O, I, k, k]``; styles: ``[N, I]``.
        noise: broadcastable to the output ``[N, O, H', W']``.
        up, padding, resample_filter, flip_weight: see :func:`conv2d_resample`.
        demodulate: apply ``d`` (ToRGB layers do not).
    """
    batch, in_channels = x.shape[:2]
    out_channels, _, kh, kw = weight.shape
    w = weight.unsqueeze(0) * styles.reshape(batch, 1, -1, 1, 1)  # [N, O, I, k, k]
    if demodulate:
        w = w * (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt().reshape(batch, -1, 1, 1, 1)
    x = x.reshape(1, batch * in_channels, *x.shape[2:])
    w = w.reshape(batch * out_channels, in_channels, kh, kw).to(x.dtype)
    x = conv2d_resample(x, w, resample_filter, up=up, padding=padding, flip_weight=flip_weight, groups=batch)
    x = x.reshape(batch, out_channels, *x.shape[2:])
    if noise is not None:
        x = x + noise.to(x.dtype)
    return x
