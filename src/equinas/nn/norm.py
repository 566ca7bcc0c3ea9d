"""Batch normalisation for group feature maps."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

from equinas.groups import PlanarGroup
from equinas.nn.conv import ConvBase, check_count, resolve_groups
from equinas.nn.expansion import FilterExpansion


def _column_affine(x: torch.Tensor, scale: torch.Tensor | None, shift: torch.Tensor) -> torch.Tensor:
    """``x * scale + shift`` (``x + shift`` without ``scale``) per column of ``x`` ``[N, K]``, in
    ``x``'s dtype; ``scale`` and ``shift`` are ``[K]`` in any float dtype. For bfloat16 ``x``,
    torch's inference batch-norm kernel computes it in float32 with one rounding, 1.4-1.8x faster
    on CPU than a broadcasting ``addcmul``/``sub`` in bfloat16; float32 keeps ``addcmul``."""
    if x.dtype in (torch.bfloat16, torch.float16):  # (x - mean) / sqrt(var + 0) * scale + shift
        ones = torch.ones_like(shift)
        if scale is None:
            return F.batch_norm(x, -shift, ones, None, None, False, 0.0, 0.0)
        return F.batch_norm(x, torch.zeros_like(shift), ones, scale, shift, False, 0.0, 0.0)
    if scale is None:
        return x + shift.to(x.dtype)
    return torch.addcmul(shift.to(x.dtype), x, scale.to(x.dtype))


class _PixelsMajorBatchNorm(torch.autograd.Function):
    """Train-mode batch norm of ``x`` ``[N, C*G]`` with statistics per ``c`` over rows and ``g``.

    ``F.batch_norm`` on the ``[N, C, G]`` view computes the same but is slow for ``G = 8``
    (its inner loops run over ``G``); here every pass runs over whole rows of ``C*G`` values.
    Forward (two-pass, numerically stable; ``n = N*G``): ``mu_c = sum x / n``,
    ``var_c = sum (x - mu_c)^2 / n``, ``y = (x - mu_c) * rsqrt(var_c + eps) * w + b`` with per-
    column affine ``w, b`` ``[C*G]``. Backward, with ``xhat = (x - mu_c) * r_c``,
    ``r_c = rsqrt(var_c + eps)``: ``dw = sum g*xhat``, ``db = sum g`` per column and
    ``dx = r_c * (w*g - sum_g(w*db)/n - xhat * sum_g(w*dw)/n)``.
    Returns ``(y, mu_c, var_c)`` (biased variance). Under autocast ``x`` is bfloat16: the maps
    (``y``, the saved ``x - mu_c``, ``dx``) keep its dtype, while the column sums (accumulated
    in float32 by torch's reductions), the statistics and the affine gradients are computed in
    the parameters' dtype (float32), so the running statistics stay float32.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, groups: int, eps: float):
        channels, count = x.shape[1] // groups, x.shape[0] * groups
        stats = weight.dtype
        mean = x.sum(0).to(stats).view(channels, groups).sum(1) / count
        centred = _column_affine(x, None, -mean.repeat_interleave(groups))
        var = centred.square().sum(0).to(stats).view(channels, groups).sum(1) / count
        rstd = torch.rsqrt(var + eps).repeat_interleave(groups)
        ctx.save_for_backward(centred, weight, rstd)
        ctx.groups = groups
        ctx.mark_non_differentiable(mean, var)
        return _column_affine(centred, rstd * weight, bias), mean, var

    @staticmethod
    @once_differentiable
    def backward(ctx, grad, _grad_mean, _grad_var):
        centred, weight, rstd = ctx.saved_tensors
        groups = ctx.groups
        channels, count = centred.shape[1] // groups, centred.shape[0] * groups

        def per_channel(column: torch.Tensor) -> torch.Tensor:  # sum over g, repeated over g
            return column.view(channels, groups).sum(1).repeat_interleave(groups)

        grad = grad.contiguous()
        stats = weight.dtype
        grad_bias = grad.sum(0).to(stats)
        grad_weight = rstd * (grad * centred).sum(0).to(stats)
        shift = -rstd * per_channel(weight * grad_bias) / count
        slope = -rstd * rstd * per_channel(weight * grad_weight) / count
        grad_x = _column_affine(centred, slope, shift).addcmul_(grad, (rstd * weight).to(centred.dtype))
        return grad_x, grad_weight, grad_bias, None, None


class GroupBatchNorm(nn.Module):
    """Equivariant batch norm on ``[B, C, |G|, H, W]`` maps.

    Statistics (and running statistics) are shared by all ``|G|`` planes of an ambient
    channel, which is invariant to any permutation of the group axis. The affine scale and
    shift are shared over ``group`` (a subgroup ``H`` of the ambient ``G``): one value per
    relaxed channel ``(c, t)``, ``t`` a coset representative of ``H\\G``. With ``H = G`` this
    is the usual G-CNN batch norm; relaxing it to a subgroup keeps its function.
    """

    running_mean: torch.Tensor  # buffers, registered in __init__
    running_var: torch.Tensor
    num_batches_tracked: torch.Tensor

    def __init__(
        self,
        channels: int,
        group: PlanarGroup | str,
        ambient: PlanarGroup | str | None = None,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
    ):
        super().__init__()
        check_count("channels", channels)
        self.ambient, self.group = resolve_groups(group, ambient)
        self.channels, self.eps, self.momentum = channels, eps, momentum
        self.expansion = FilterExpansion(self.ambient, self.group, 1, lifting=True)
        width = channels * self.expansion.index
        self.weight = nn.Parameter(torch.ones(width))
        self.bias = nn.Parameter(torch.zeros(width))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 5 or x.shape[1:3] != (self.channels, self.ambient.order):
            raise ValueError(
                f"GroupBatchNorm expects input of shape [B, {self.channels}, "
                f"{self.ambient.order}, H, W], got {tuple(x.shape)}"
            )
        factor = 0.0
        if self.training:
            self.num_batches_tracked.add_(1)
            # momentum None: cumulative average, as in torch.nn.BatchNorm
            factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        pixels_major = x.permute(0, 3, 4, 1, 2)  # [B, H, W, C, |G|]
        if pixels_major.is_contiguous() and not x.is_contiguous():
            # channels-last maps (equinas.nn.layout): normalise the view [B*H*W, C, |G|], which
            # has the same statistics per channel c; the result keeps the input's layout
            b, c, g, h, w = x.shape
            rows = pixels_major.reshape(b * h * w, c * g)
            if not self.training:  # an affine map per column (c, g): one pass over the rows
                y = _column_affine(rows, *self.eval_affine())
            elif b * h * w * g > 1:
                y = self._train_pixels_major(rows, factor)
            else:
                y = self._normalize(rows.reshape(b * h * w, c, g), factor)  # torch's error message
            return y.reshape(b, h, w, c, g).permute(0, 3, 4, 1, 2)
        return self._normalize(x, factor)

    def eval_affine(self, dtype: torch.dtype | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The eval-mode norm as an affine map per ambient plane: ``(gain, offset)``, each
        ``[C*|G|]`` (plane ``(c, g)`` at ``c*|G| + g``), with ``y = x * gain + offset``:
        ``gain = w[c, g] / sqrt(running_var[c] + eps)``, ``offset = b[c, g] - running_mean[c] * gain``.
        Computed in the statistics' dtype (or ``dtype`` when it is float64), returned in ``dtype``."""
        work = torch.float64 if dtype == torch.float64 else self.running_var.dtype
        rstd = torch.rsqrt(self.running_var.to(work) + self.eps)[:, None]
        gain = self.expansion.vector(self.weight.to(work)) * rstd  # [C, |G|]
        offset = self.expansion.vector(self.bias.to(work)) - self.running_mean.to(work)[:, None] * gain
        out = dtype or gain.dtype
        return gain.reshape(-1).to(out), offset.reshape(-1).to(out)

    def _train_pixels_major(self, x: torch.Tensor, factor: float) -> torch.Tensor:
        """Train-mode batch norm of ``x`` ``[N, C*|G|]`` (column ``(c, g)``); updates the running
        statistics as ``F.batch_norm`` does (the unbiased variance for ``running_var``)."""
        y, mean, var = _PixelsMajorBatchNorm.apply(
            x,
            self.expansion.vector(self.weight).reshape(-1),
            self.expansion.vector(self.bias).reshape(-1),
            self.ambient.order,
            self.eps,
        )
        count = x.shape[0] * self.ambient.order
        with torch.no_grad():
            self.running_mean.lerp_(mean, factor)
            self.running_var.lerp_(var * (count / (count - 1)), factor)
        return y

    def _normalize(self, x: torch.Tensor, factor: float) -> torch.Tensor:
        """Batch norm of ``x`` ``[N, C, |G|, ...]`` with statistics per channel ``C``."""
        if self.expansion.index == 1:  # affine shared by the whole group axis: one fused call
            return F.batch_norm(
                x,
                self.running_mean,
                self.running_var,
                self.weight,
                self.bias,
                self.training,
                factor,
                self.eps,
            )
        y = F.batch_norm(x, self.running_mean, self.running_var, None, None, self.training, factor, self.eps)
        plane = (x.shape[1], x.shape[2]) + (1,) * (x.dim() - 3)  # [C, |G|, 1, 1] or [C, |G|]
        scale = self.expansion.vector(self.weight).reshape(plane).to(y.dtype)
        shift = self.expansion.vector(self.bias).reshape(plane).to(y.dtype)
        return torch.addcmul(shift, y, scale)

    def extra_repr(self) -> str:
        params = self.weight.numel() + self.bias.numel()
        layout = f"[B, {self.channels}, {self.ambient.order}, H, W]"
        return f"{self.channels}, group={self.group}, ambient={self.ambient}, {layout}, params={params}"


def normalized_conv(conv: nn.Module, norm: GroupBatchNorm, x: torch.Tensor) -> torch.Tensor:
    """``norm(conv(x))``. With ``norm`` in eval mode and ``conv`` an equinas convolution, the
    norm's affine map (``eval_affine``) is folded into the conv's filter and bias: one pass over
    the output less, the same values to float rounding, and as equivariant (the gain is constant
    on the planes the conv's group ties)."""
    if norm.training or not isinstance(conv, ConvBase):
        return norm(conv(x))
    conv.check_input(x)
    filt, bias = conv.filter(), conv.expanded_bias()
    gain, offset = norm.eval_affine(filt.dtype)
    if bias is not None:
        offset = torch.addcmul(offset, bias, gain)
    return conv.conv_with(x, filt * gain[:, None, None, None], offset)
