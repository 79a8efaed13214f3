"""PyTorch twin of ebdiff's networks (crates/ebdiff-model).

The modules below mirror the Rust (Burn) ones layer for layer, and their attribute names are the
Burn module paths, so ``model.state_dict()`` has exactly the tensor names of an ebdiff
``model.safetensors`` (enum variant names such as ``Mlp2d``/``Unet`` are not part of the path).
Layouts follow Burn, not ``torch.nn``:

* linear weights are ``[in, out]`` and applied as ``x @ W + b`` (``torch.nn.Linear`` would need
  the transpose);
* conv weights are ``[out, in, k, k]`` (same as PyTorch);
* norm affine parameters are ``gamma`` / ``beta``.

The energy E(x, t[, y]) is computed by the forward pass; ε̂ = ∇ₓE comes from ``torch.autograd``
(ebdiff computes it with an explicit VJP). Data are passed flat ``[batch, dim]`` as in Rust.

Entry points: :func:`build_model` (from a parsed config), :func:`load_ebdiff` (an export folder
with ``config.toml`` and ``model.safetensors``), :func:`save_ebdiff` (a safetensors file that
``cargo xtask train --init-from FILE`` accepts).
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "DiffusionModel",
    "ModelSpec",
    "build_model",
    "load_config",
    "load_ebdiff",
    "load_weights",
    "save_ebdiff",
    "sinusoidal_embedding",
]


# ---------------------------------------------------------------------------------------------
# Layers (crates/ebdiff-model/src/layers)


def _uniform_(t: Tensor, fan_in: int, zero: bool) -> None:
    """ebdiff's `default_init`: U(±1/√fan_in) (PyTorch's default for Linear/Conv2d), or zeros."""
    with torch.no_grad():
        if zero:
            t.zero_()
        else:
            bound = 1.0 / math.sqrt(fan_in)
            t.uniform_(-bound, bound)


class Linear(nn.Module):
    """y = x W + b over the last dim, W stored ``[in, out]`` (Burn's layout)."""

    def __init__(self, d_in: int, d_out: int, zero: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(d_in, d_out))
        self.bias = nn.Parameter(torch.empty(d_out))
        _uniform_(self.weight, d_in, zero)
        _uniform_(self.bias, d_in, zero)

    def forward(self, x: Tensor) -> Tensor:
        return x @ self.weight + self.bias


class Conv2d(nn.Module):
    """Square-kernel conv with symmetric padding, weight ``[out, in, k, k]``, always with bias."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, padding: int,
                 zero: bool = False):
        super().__init__()
        self.stride = stride
        self.padding = padding
        self.weight = nn.Parameter(torch.empty(c_out, c_in, kernel, kernel))
        self.bias = nn.Parameter(torch.empty(c_out))
        fan_in = c_in * kernel * kernel
        _uniform_(self.weight, fan_in, zero)
        _uniform_(self.bias, fan_in, zero)

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight, self.bias, stride=self.stride, padding=self.padding)


def _normalize_last(x: Tensor, eps: float) -> Tensor:
    """(x − mean) / √(var + ε) over the last dim, biased variance (as ebdiff's `normalize_last`)."""
    centered = x - x.mean(dim=-1, keepdim=True)
    var = centered.square().mean(dim=-1, keepdim=True)
    return centered / torch.sqrt(var + eps)


class GroupNorm(nn.Module):
    """GroupNorm over ``[B, C, H, W]``, ε = 1e-5, per-channel gamma/beta."""

    def __init__(self, groups: int, channels: int, eps: float = 1e-5):
        super().__init__()
        if channels % groups != 0:
            raise ValueError(f"GroupNorm: {channels} channels are not divisible into {groups} groups")
        self.groups = groups
        self.eps = eps
        self.gamma = nn.Parameter(torch.ones(channels))
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        xhat = _normalize_last(x.reshape(b, self.groups, (c // self.groups) * h * w), self.eps)
        xhat = xhat.reshape(b, c, h, w)
        return xhat * self.gamma.reshape(1, c, 1, 1) + self.beta.reshape(1, c, 1, 1)


class LayerNorm(nn.Module):
    """LayerNorm over the last dim of ``[B, F]``, ε = 1e-5."""

    def __init__(self, features: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.gamma = nn.Parameter(torch.ones(features))
        self.beta = nn.Parameter(torch.zeros(features))

    def forward(self, x: Tensor) -> Tensor:
        return _normalize_last(x, self.eps) * self.gamma + self.beta


def sinusoidal_embedding(t: Tensor, dim: int, dtype: torch.dtype,
                         f32_args: bool = True) -> Tensor:
    """DDPM features [sin(t·f_i), cos(t·f_i)], f_i = 10000^(−i/(d/2−1)).

    ebdiff rounds the frequencies to f32 and forms t·f_i in f32; with ``f32_args`` (default) the
    twin does the same, so the arguments of sin/cos are bit-identical to Rust's even when the rest
    of the network runs in f64 (t·f_i reaches ~10³ rad, where f32 rounding is ~6e-5 rad).
    """
    if dim % 2 != 0 or dim < 4:
        raise ValueError(f"sinusoidal embedding needs an even dim ≥ 4, got {dim}")
    half = dim // 2
    freqs = torch.tensor(
        [math.exp(-math.log(10000.0) * i / (half - 1)) for i in range(half)],
        dtype=torch.float64,
    ).to(torch.float32).to(t.device)
    if f32_args:
        args = (t.to(torch.float32)[:, None] * freqs[None, :]).to(dtype)
    else:
        args = t.to(dtype)[:, None] * freqs.to(dtype)[None, :]
    return torch.cat([torch.sin(args), torch.cos(args)], dim=1)


class TimeMlp(nn.Module):
    """Sinusoidal features → Linear → SiLU → Linear."""

    def __init__(self, base_dim: int, out_dim: int):
        super().__init__()
        self.base_dim = base_dim
        self.l1 = Linear(base_dim, out_dim)
        self.l2 = Linear(out_dim, out_dim)

    def forward(self, t: Tensor, f32_args: bool = True) -> Tensor:
        emb = sinusoidal_embedding(t, self.base_dim, self.l1.weight.dtype, f32_args)
        return self.l2(F.silu(self.l1(emb)))


class ClassEmbedding(nn.Module):
    """Learned table ``[num_classes + 1, dim]``; row ``num_classes`` is the null label (CFG)."""

    def __init__(self, num_classes: int, dim: int):
        super().__init__()
        self.num_classes = num_classes
        self.table = nn.Parameter(torch.randn(num_classes + 1, dim))

    def null_label(self) -> int:
        return self.num_classes

    def forward(self, labels: Optional[Tensor], batch: int) -> Tensor:
        if labels is None:
            labels = torch.full((batch,), self.num_classes, dtype=torch.long,
                                device=self.table.device)
        labels = labels.to(torch.long)
        if labels.numel() and (labels.min() < 0 or labels.max() > self.num_classes):
            raise ValueError(f"labels must be in [0, {self.num_classes}] "
                             f"({self.num_classes} = null label)")
        return self.table[labels]


class AttentionBlock(nn.Module):
    """y = x + proj(softmax(QKᵀ/√C) V), single head, Q,K,V = GN(x)·W over the H·W tokens."""

    def __init__(self, channels: int, groups: int, zero_proj: bool = False):
        super().__init__()
        self.norm = GroupNorm(groups, channels)
        self.q = Linear(channels, channels)
        self.k = Linear(channels, channels)
        self.v = Linear(channels, channels)
        self.proj = Linear(channels, channels, zero=zero_proj)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        tokens = self.norm(x).reshape(b, c, h * w).transpose(1, 2)
        q, k, v = self.q(tokens), self.k(tokens), self.v(tokens)
        p = torch.softmax((q @ k.transpose(1, 2)) * (1.0 / math.sqrt(c)), dim=2)
        o = self.proj(p @ v)
        return x + o.transpose(1, 2).reshape(b, c, h, w)


class ResBlock(nn.Module):
    """skip(x) + conv2(dropout(silu(GN₂(conv1(silu(GN₁(x))) + temb(silu(emb)))))).

    Dropout is only active in training (``self.training``); evaluation is deterministic.
    """

    def __init__(self, c_in: int, c_out: int, temb_dim: int, groups: int, dropout: float):
        super().__init__()
        self.norm1 = GroupNorm(groups, c_in)
        self.conv1 = Conv2d(c_in, c_out, 3, 1, 1)
        self.temb = Linear(temb_dim, c_out)
        self.norm2 = GroupNorm(groups, c_out)
        self.conv2 = Conv2d(c_out, c_out, 3, 1, 1)
        self.skip = Conv2d(c_in, c_out, 1, 1, 0) if c_in != c_out else None
        self.dropout = dropout

    def forward(self, x: Tensor, temb_act: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.temb(temb_act)[:, :, None, None]
        h = F.silu(self.norm2(h))
        if self.training and self.dropout > 0.0:
            h = F.dropout(h, self.dropout, training=True)
        h = self.conv2(h)
        return (x if self.skip is None else self.skip(x)) + h


class Downsample(nn.Module):
    """3×3 stride-2 conv (``conv``) or 2×2 average pool (``avg-pool``, no parameters)."""

    def __init__(self, kind: str, channels: int):
        super().__init__()
        if kind == "conv":
            self.conv = Conv2d(channels, channels, 3, 2, 1)
        elif kind == "avg-pool":
            self.conv = None
        else:
            raise ValueError(f"unknown downsample kind {kind!r} (conv | avg-pool)")

    def forward(self, x: Tensor) -> Tensor:
        if self.conv is not None:
            return self.conv(x)
        return F.avg_pool2d(x, 2)


class Upsample(nn.Module):
    """Nearest ×2, then a 3×3 conv."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = Conv2d(channels, channels, 3, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


# ---------------------------------------------------------------------------------------------
# Backbones (crates/ebdiff-model/src/backbone)


class MlpBlock(nn.Module):
    """h + l3(silu(l2(silu(l1(silu(LN(h))) + l_emb(e)))))."""

    def __init__(self, hidden: int, emb_dim: int, zero_out: bool):
        super().__init__()
        self.norm = LayerNorm(hidden)
        self.l1 = Linear(hidden, 2 * hidden)
        self.l_emb = Linear(emb_dim, 2 * hidden)
        self.l2 = Linear(2 * hidden, 2 * hidden)
        self.l3 = Linear(2 * hidden, hidden, zero=zero_out)

    def forward(self, h: Tensor, emb: Tensor) -> Tensor:
        c = self.l1(F.silu(self.norm(h))) + self.l_emb(emb)
        return h + self.l3(F.silu(self.l2(F.silu(c))))


class ResidualMlp(nn.Module):
    """The paper's residual MLP for 2-D data; e = time_table[t] (+ class_emb[y]), no activation."""

    def __init__(self, data_dim: int, hidden: int, blocks: int, emb_dim: int, timesteps: int,
                 num_classes: Optional[int], zero_init_output: bool):
        super().__init__()
        self.input = Linear(data_dim, hidden)
        self.time_table = nn.Parameter(torch.randn(timesteps, emb_dim))
        self.class_emb = ClassEmbedding(num_classes, emb_dim) if num_classes is not None else None
        self.blocks = nn.ModuleList(
            [MlpBlock(hidden, emb_dim, zero_init_output) for _ in range(blocks)])
        self.output = Linear(hidden, data_dim, zero=zero_init_output)

    def embedding(self, t: Tensor, labels: Optional[Tensor], batch: int) -> Tensor:
        e = self.time_table[t.to(torch.long)]
        if self.class_emb is not None:
            return e + self.class_emb(labels, batch)
        if labels is not None:
            raise ValueError("labels were given to an unconditional model")
        return e

    def forward(self, x: Tensor, t: Tensor, labels: Optional[Tensor] = None) -> Tensor:
        emb = self.embedding(t, labels, x.shape[0])
        h = self.input(x)
        for block in self.blocks:
            h = block(h, emb)
        return self.output(h)


class _Level(nn.Module):
    def __init__(self, blocks, attns, resample_name: str, resample):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.attns = nn.ModuleList(attns)
        setattr(self, resample_name, resample)


class Unet(nn.Module):
    """DDPM UNet (crates/ebdiff-model/src/backbone/unet.rs). ``up[0]`` is the deepest level."""

    def __init__(self, image_shape, channels: int, channel_mult, res_blocks: int,
                 attention_resolutions, dropout: float, groups: int, downsample: str,
                 num_classes: Optional[int], zero_init_output: bool):
        super().__init__()
        ch = channels
        temb_dim = 4 * ch
        levels = len(channel_mult)
        c_img, h_img, _ = image_shape
        self.image_shape = tuple(image_shape)
        self.attention_levels = []
        self.time_mlp = TimeMlp(ch, temb_dim)
        self.class_emb = ClassEmbedding(num_classes, temb_dim) if num_classes is not None else None
        self.conv_in = Conv2d(c_img, ch, 3, 1, 1)
        down = []
        skip_channels = [ch]
        c_cur = ch
        for i, mult in enumerate(channel_mult):
            use_attn = (h_img >> i) in attention_resolutions
            if use_attn:
                self.attention_levels.append(i)
            blocks, attns = [], []
            for _ in range(res_blocks):
                blocks.append(ResBlock(c_cur, ch * mult, temb_dim, groups, dropout))
                c_cur = ch * mult
                if use_attn:
                    attns.append(AttentionBlock(c_cur, groups, False))
                skip_channels.append(c_cur)
            ds = None
            if i + 1 < levels:
                skip_channels.append(c_cur)
                ds = Downsample(downsample, c_cur)
            down.append(_Level(blocks, attns, "downsample", ds))
        self.down = nn.ModuleList(down)
        self.mid1 = ResBlock(c_cur, c_cur, temb_dim, groups, dropout)
        self.mid_attn = AttentionBlock(c_cur, groups, False)
        self.mid2 = ResBlock(c_cur, c_cur, temb_dim, groups, dropout)
        up = []
        for i in reversed(range(levels)):
            mult = channel_mult[i]
            use_attn = i in self.attention_levels
            blocks, attns = [], []
            for _ in range(res_blocks + 1):
                skip = skip_channels.pop()
                blocks.append(ResBlock(c_cur + skip, ch * mult, temb_dim, groups, dropout))
                c_cur = ch * mult
                if use_attn:
                    attns.append(AttentionBlock(c_cur, groups, False))
            us = Upsample(c_cur) if i > 0 else None
            up.append(_Level(blocks, attns, "upsample", us))
        assert not skip_channels, "skip bookkeeping"
        self.up = nn.ModuleList(up)
        self.norm_out = GroupNorm(groups, c_cur)
        self.conv_out = Conv2d(c_cur, c_img, 3, 1, 1, zero=zero_init_output)
        self.f32_time_args = True

    def temb_act(self, t: Tensor, labels: Optional[Tensor], batch: int) -> Tensor:
        e = self.time_mlp(t, self.f32_time_args)
        if self.class_emb is not None:
            e = e + self.class_emb(labels, batch)
        elif labels is not None:
            raise ValueError("labels were given to an unconditional model")
        return F.silu(e)

    @staticmethod
    def _block(level: _Level, j: int, h: Tensor, temb: Tensor) -> Tensor:
        h = level.blocks[j](h, temb)
        if j < len(level.attns):
            h = level.attns[j](h)
        return h

    def forward(self, x: Tensor, t: Tensor, labels: Optional[Tensor] = None) -> Tensor:
        c, hh, ww = self.image_shape
        b = x.shape[0]
        temb = self.temb_act(t, labels, b)
        h = self.conv_in(x.reshape(b, c, hh, ww))
        hs = [h]
        for level in self.down:
            for j in range(len(level.blocks)):
                h = self._block(level, j, h, temb)
                hs.append(h)
            if level.downsample is not None:
                h = level.downsample(h)
                hs.append(h)
        h = self.mid2(self.mid_attn(self.mid1(h, temb)), temb)
        for level in self.up:
            for j in range(len(level.blocks)):
                h = self._block(level, j, torch.cat([h, hs.pop()], dim=1), temb)
            if level.upsample is not None:
                h = level.upsample(h)
        assert not hs, "skip bookkeeping"
        out = self.conv_out(F.silu(self.norm_out(h)))
        return out.reshape(b, c * hh * ww)


# ---------------------------------------------------------------------------------------------
# Model: backbone + parameterization (crates/ebdiff-model/src/model.rs)


@dataclass(frozen=True)
class ModelSpec:
    """The parts of an experiment config the model depends on."""

    parameterization: str  # "eps" | "energy"
    energy_form: str  # "reconstruction" | "squared-norm" | "inner-product"
    energy_scale: float
    zero_init_output: bool
    num_classes: Optional[int]
    data_shape: tuple
    backbone: dict
    timesteps: int

    @property
    def data_dim(self) -> int:
        return math.prod(self.data_shape)

    @staticmethod
    def from_config(cfg: dict) -> "ModelSpec":
        m = cfg["model"]
        allowed = {"parameterization", "energy_form", "energy_scale", "zero_init_output",
                   "num_classes", "data_shape", "backbone"}
        unknown = set(m) - allowed
        if unknown:
            raise ValueError(f"unknown keys in [model]: {sorted(unknown)}")
        param = m["parameterization"]
        if param not in ("eps", "energy"):
            raise ValueError(f"model.parameterization must be eps | energy, got {param!r}")
        form = m.get("energy_form", "reconstruction")
        if form not in ("reconstruction", "squared-norm", "inner-product"):
            raise ValueError(f"unknown model.energy_form {form!r}")
        scale = float(m.get("energy_scale", 1.0))
        if not (scale > 0 and math.isfinite(scale)):
            raise ValueError(f"model.energy_scale must be positive, got {scale}")
        zero = m.get("zero_init_output")
        if zero is None:  # ebdiff: default true, except for squared-norm energy models
            zero = not (param == "energy" and form == "squared-norm")
        num_classes = m.get("num_classes")
        if num_classes is not None and num_classes < 1:
            raise ValueError("model.num_classes must be ≥ 1")
        diffusion = cfg["diffusion"]
        return ModelSpec(param, form, scale, bool(zero), num_classes,
                         tuple(m["data_shape"]), dict(m["backbone"]),
                         int(diffusion["timesteps"]))


_MLP_DEFAULTS = dict(hidden=128, blocks=4, emb_dim=32)
_UNET_DEFAULTS = dict(channels=128, channel_mult=[1, 2, 2, 2], res_blocks=2,
                      attention_resolutions=[16], dropout=0.0, groups=32, downsample="conv")


def _with_defaults(given: dict, defaults: dict, kind: str) -> dict:
    unknown = set(given) - set(defaults) - {"kind"}
    if unknown:
        raise ValueError(f"unknown keys for backbone kind {kind!r}: {sorted(unknown)}")
    return {**defaults, **{k: v for k, v in given.items() if k != "kind"}}


class DiffusionModel(nn.Module):
    """Backbone g plus the parameterization: ε̂ = g (``eps``) or E from ``energy_form``.

    Energy heads (model.rs): reconstruction E = c‖g − x‖² (c = ``energy_scale``),
    squared-norm E = ½‖g‖², inner-product E = ⟨x, g⟩, summed over the flat data dim.
    """

    def __init__(self, spec: ModelSpec):
        super().__init__()
        self.spec = spec
        bb = spec.backbone
        kind = bb.get("kind")
        if kind == "mlp2d":
            o = _with_defaults(bb, _MLP_DEFAULTS, kind)
            if len(spec.data_shape) != 1:
                raise ValueError(f"mlp2d takes vectors, got data_shape {spec.data_shape}")
            self.backbone = ResidualMlp(spec.data_dim, o["hidden"], o["blocks"], o["emb_dim"],
                                        spec.timesteps, spec.num_classes,
                                        spec.zero_init_output)
        elif kind == "unet":
            o = _with_defaults(bb, _UNET_DEFAULTS, kind)
            if len(spec.data_shape) != 3:
                raise ValueError(f"unet needs data_shape [C, H, W], got {spec.data_shape}")
            self.backbone = Unet(spec.data_shape, o["channels"], list(o["channel_mult"]),
                                 o["res_blocks"], list(o["attention_resolutions"]),
                                 float(o["dropout"]), o["groups"], o["downsample"],
                                 spec.num_classes, spec.zero_init_output)
        else:
            raise ValueError(f"unknown backbone kind {kind!r} (mlp2d | unet)")

    @property
    def is_energy(self) -> bool:
        return self.spec.parameterization == "energy"

    @property
    def data_dim(self) -> int:
        return self.spec.data_dim

    def g(self, x: Tensor, t: Tensor, labels: Optional[Tensor] = None) -> Tensor:
        """The backbone output, ``[B, dim]``."""
        if x.ndim != 2 or x.shape[1] != self.data_dim:
            raise ValueError(f"x must be [batch, {self.data_dim}], got {list(x.shape)}")
        return self.backbone(x, t, labels)

    def head_energy(self, x: Tensor, g: Tensor) -> Tensor:
        form = self.spec.energy_form
        if form == "reconstruction":
            return (g - x).square().sum(dim=1) * self.spec.energy_scale
        if form == "squared-norm":
            return g.square().sum(dim=1) * 0.5
        return (x * g).sum(dim=1)

    def energy(self, x: Tensor, t: Tensor, labels: Optional[Tensor] = None) -> Tensor:
        """E(x, t[, y]), ``[B]``; energy models only."""
        if not self.is_energy:
            raise ValueError("energy requested from a score (eps) parameterized model")
        return self.head_energy(x, self.g(x, t, labels))

    def energy_and_eps(self, x: Tensor, t: Tensor, labels: Optional[Tensor] = None,
                       create_graph: bool = False) -> tuple[Tensor, Tensor]:
        """(E, ∇ₓE) with ∇ₓE by autograd. ``create_graph=True`` keeps the graph for a DSM loss."""
        with torch.enable_grad():
            x = x.detach().requires_grad_(True) if not x.requires_grad else x
            e = self.energy(x, t, labels)
            (grad,) = torch.autograd.grad(e.sum(), x, create_graph=create_graph)
        return e, grad

    def eps(self, x: Tensor, t: Tensor, labels: Optional[Tensor] = None,
            create_graph: bool = False) -> Tensor:
        """ε̂: the backbone output (eps models) or ∇ₓE (energy models)."""
        if not self.is_energy:
            return self.g(x, t, labels)
        return self.energy_and_eps(x, t, labels, create_graph)[1]

    def forward(self, x: Tensor, t: Tensor, labels: Optional[Tensor] = None) -> Tensor:
        """E for energy models, ε̂ for eps models."""
        return self.energy(x, t, labels) if self.is_energy else self.g(x, t, labels)


# ---------------------------------------------------------------------------------------------
# Config and weights


def load_config(path) -> dict:
    with open(path, "rb") as f:
        return tomllib.load(f)


def build_model(cfg: dict) -> DiffusionModel:
    """The twin of an experiment config (dict from ``config.toml``), PyTorch-randomly initialized
    with ebdiff's distributions (U(±1/√fan_in); zeros for output layers if ``zero_init_output``;
    N(0, 1) time/class tables; norms γ=1, β=0)."""
    return DiffusionModel(ModelSpec.from_config(cfg))


def load_weights(model: DiffusionModel, path) -> DiffusionModel:
    """Fills ``model`` from an ebdiff safetensors file, strictly: every parameter must be there
    with its exact shape and the file may hold nothing else; otherwise ``ValueError`` lists every
    missing, unexpected and mismatched name."""
    from safetensors import safe_open

    params = dict(model.named_parameters())
    missing, unexpected, shapes, dtypes = [], [], [], []
    loaded = {}
    with safe_open(str(path), framework="pt") as f:
        names = list(f.keys())
        for name in names:
            if name not in params:
                unexpected.append(name)
                continue
            tensor = f.get_tensor(name)
            if not tensor.is_floating_point():
                dtypes.append(name)
            elif tuple(tensor.shape) != tuple(params[name].shape):
                shapes.append(f"{name}: model {list(params[name].shape)}, file {list(tensor.shape)}")
            else:
                loaded[name] = tensor
    missing = [n for n in params if n not in names]
    if missing or unexpected or shapes or dtypes:
        lines = [f"{path} does not fit the model built from the config:"]
        lines += [f"  shape of {s}" for s in shapes]
        lines += [f"  `{n}` holds integers, the model wants floats" for n in dtypes]
        lines += [f"  missing from the file: `{n}`" for n in sorted(missing)]
        lines += [f"  not in the model: `{n}`" for n in sorted(unexpected)]
        raise ValueError("\n".join(lines))
    with torch.no_grad():
        for name, p in params.items():
            p.copy_(loaded[name].to(p.dtype))
    return model


def load_ebdiff(directory, dtype: torch.dtype = torch.float32,
                device: str | torch.device = "cpu") -> DiffusionModel:
    """The model of an ebdiff export folder (``config.toml`` + ``model.safetensors``), in eval
    mode (dropout off)."""
    d = Path(directory)
    model = build_model(load_config(d / "config.toml"))
    load_weights(model, d / "model.safetensors")
    return model.to(device=device, dtype=dtype).eval()


def save_ebdiff(model: DiffusionModel, path, metadata: Optional[dict] = None) -> None:
    """Writes the parameters as F32 tensors named by Burn module path (the layout ebdiff reads:
    linear ``[in, out]``, conv ``[out, in, k, k]``), e.g. for ``xtask train --init-from PATH``."""
    from safetensors.torch import save_file

    tensors = {name: p.detach().to(device="cpu", dtype=torch.float32).contiguous()
               for name, p in model.named_parameters()}
    meta = {"format": "ebdiff", "producer": f"ebdiff_torch (torch {torch.__version__})"}
    meta.update(metadata or {})
    save_file(tensors, str(path), metadata=meta)
