"""U-Nets for 2D and 3D images, with size presets.

The same network serves the score model (its output is the score of each input channel) and the
direct denoisers used as baselines (supervised, Noise2Noise). Inputs of any size are padded
(reflect) to a multiple of ``2**depth`` and the output cropped back.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["UNet", "UNetConfig", "PRESETS", "build_network", "network_info", "SIGMA_REF"]

#: the sigma_a channel of a conditioned network holds log(sigma_a / SIGMA_REF)
SIGMA_REF = 0.05
#: width of a modulated network's sigma embedding
_EMBED = 32
#: whether new sigma-conditioned networks modulate every block (``sigma_modulation``)
SIGMA_MODULATION = True


@dataclass(frozen=True)
class UNetConfig:
    """Architecture of a :class:`UNet` (stored in model files)."""

    dims: int = 2
    in_channels: int = 1
    out_channels: int = 1
    base_channels: int = 32
    depth: int = 3
    convs_per_level: int = 2
    #: a sigma-conditioned score network: one more input channel holds
    #: log(sigma_a / SIGMA_REF), the AR-DAE perturbation the score is asked for
    sigma_input: bool = False
    #: a conditioned network also scales and shifts every block's output channels by a
    #: learned function of that level (FiLM, as noise-conditioned score networks do); False:
    #: the level enters through the input channel only (model files before 0.3)
    sigma_modulation: bool = False

    def __post_init__(self):
        if self.dims not in (2, 3):
            raise ValueError(f"dims must be 2 or 3, got {self.dims}")
        for name in ("in_channels", "out_channels", "base_channels", "depth", "convs_per_level"):
            if int(getattr(self, name)) < (0 if name == "depth" else 1):
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")

    @property
    def multiple(self) -> int:
        """Spatial sizes the network needs: inputs are padded to a multiple of this."""
        return 2 ** self.depth

    def to_dict(self) -> dict:
        return asdict(self)


#: Size presets: ``small`` trains in minutes on 2 CPU cores, ``default`` is the quality/speed
#: balance for CPU work, ``large`` is meant for GPUs. Parameters and FLOPs: docs/training.md.
PRESETS = {
    "small": dict(base_channels=16, depth=2),
    "default": dict(base_channels=32, depth=3),
    "large": dict(base_channels=64, depth=4),
}


def _conv(dims, cin, cout, k=3):
    conv = nn.Conv2d if dims == 2 else nn.Conv3d
    return conv(cin, cout, k, padding=k // 2)


class _Block(nn.Sequential):
    def __init__(self, dims, cin, cout, n):
        layers = []
        for i in range(n):
            layers += [_conv(dims, cin if i == 0 else cout, cout), nn.ReLU(inplace=True)]
        super().__init__(*layers)


class UNet(nn.Module):
    """A plain U-Net: ``depth`` poolings, channels doubling per level, skip connections.

    Parameters
    ----------
    config : UNetConfig
    """

    def __init__(self, config: UNetConfig):
        super().__init__()
        self.config = config
        d, c = config.dims, config.base_channels
        widths = [c * 2 ** i for i in range(config.depth + 1)]
        self.down = nn.ModuleList()
        cin = config.in_channels + int(config.sigma_input)
        for w in widths:
            self.down.append(_Block(d, cin, w, config.convs_per_level))
            cin = w
        self.up = nn.ModuleList()
        self.reduce = nn.ModuleList()
        for w_skip, w in zip(reversed(widths[:-1]), reversed(widths[1:])):
            self.reduce.append(_conv(d, w, w_skip, k=1))
            self.up.append(_Block(d, 2 * w_skip, w_skip, config.convs_per_level))
        self.head = _conv(d, widths[0], config.out_channels, k=1)
        self._pool = F.max_pool2d if d == 2 else F.max_pool3d
        self.sigma_mlp = self.modulation = None
        if config.sigma_input and config.sigma_modulation:
            # log-level -> a shared embedding -> (scale, shift) per block; the heads start at
            # zero, so a fresh network is the input-channel one
            self.sigma_mlp = nn.Sequential(nn.Linear(1, _EMBED), nn.SiLU(),
                                           nn.Linear(_EMBED, _EMBED), nn.SiLU())
            outs = [b[-2].out_channels for b in self.down] + \
                [b[-2].out_channels for b in self.up]
            self.modulation = nn.ModuleList(nn.Linear(_EMBED, 2 * w) for w in outs)
            for head in self.modulation:
                nn.init.zeros_(head.weight)
                nn.init.zeros_(head.bias)

    def sigma_level(self, x: torch.Tensor, sigma) -> torch.Tensor:
        """log(sigma / SIGMA_REF), one per sample of ``x`` (``sigma``: a number, or one per
        sample), checked."""
        if sigma is None:
            raise ValueError("a sigma-conditioned network needs sigma (the AR-DAE perturbation "
                             "sigma_a, normalised units)")
        sig = torch.as_tensor(sigma, dtype=torch.float32, device=x.device).reshape(-1)
        if not bool((sig > 0).all()):
            raise ValueError(f"sigma_a must be > 0, got {sig.tolist()}")
        return torch.log(sig / SIGMA_REF).expand(x.shape[0])

    def modulations(self, x: torch.Tensor, sigma) -> list | None:
        """The (scale, shift) of every block, down then up, each ``(N, C, 1, ...)``, for a
        network with ``sigma_modulation``; else None."""
        if self.modulation is None:
            return None
        emb = self.sigma_mlp(self.sigma_level(x, sigma).reshape(-1, 1))
        shape = (x.shape[0], -1) + (1,) * (x.ndim - 2)
        out = []
        for head in self.modulation:
            g, b = head(emb).to(x.dtype).chunk(2, dim=1)
            out.append(((1 + g).reshape(shape), b.reshape(shape)))
        return out

    def with_sigma(self, x: torch.Tensor, sigma=None) -> torch.Tensor:
        """The network's input: ``x``, and for a sigma-conditioned network the channel of
        log(sigma / SIGMA_REF) (``sigma``: a number, or one per sample of the batch)."""
        if not self.config.sigma_input:
            if sigma is not None:
                raise ValueError("this network is not sigma-conditioned; drop sigma")
            return x
        level = self.sigma_level(x, sigma).to(x.dtype)
        level = level.reshape((-1, 1) + (1,) * (x.ndim - 2)).expand(
            (x.shape[0], 1) + tuple(x.shape[2:]))
        fmt = torch.channels_last if x.ndim == 4 and x.is_contiguous(
            memory_format=torch.channels_last) else torch.contiguous_format
        return torch.cat([x, level], dim=1).contiguous(memory_format=fmt)

    def forward(self, x: torch.Tensor, sigma=None) -> torch.Tensor:
        """Run on ``(N, C, *spatial)``; any spatial size (padded to the multiple, cropped).
        ``sigma``: the AR-DAE perturbation of a sigma-conditioned network (a number, or one
        per sample)."""
        spatial = x.shape[2:]
        mods = self.modulations(x, sigma)
        x = pad_to_multiple(self.with_sigma(x, sigma), self.config.multiple)
        skips = []
        for i, block in enumerate(self.down):
            if i:
                x = self._pool(x, 2)
            x = block(x)
            if mods is not None:
                x = x * mods[i][0] + mods[i][1]
            skips.append(x)
        skips.pop()
        for j, (reduce, block) in enumerate(zip(self.reduce, self.up)):
            x = F.interpolate(reduce(x), scale_factor=2, mode="nearest")
            x = block(torch.cat([x, skips.pop()], dim=1))
            if mods is not None:
                g, b = mods[len(self.down) + j]
                x = x * g + b
        x = self.head(x)
        return x[(slice(None), slice(None)) + tuple(slice(0, n) for n in spatial)]


def pad_to_multiple(x: torch.Tensor, m: int) -> torch.Tensor:
    """Pad the spatial axes of ``(N, C, *spatial)`` at their end to multiples of ``m``
    (reflect; replicate where an axis is too short to reflect), keeping the memory layout."""
    spatial = x.shape[2:]
    pads = []
    for n in reversed(spatial):
        pads += [0, (-n) % m]
    if not any(pads):
        return x
    fmt = torch.channels_last if x.ndim == 4 and x.is_contiguous(
        memory_format=torch.channels_last) else torch.contiguous_format
    mode = "reflect" if all(n > 1 and (-n) % m < n for n in spatial) else "replicate"
    return F.pad(x, pads, mode=mode).contiguous(memory_format=fmt)


def build_network(preset: str = "default", *, dims: int = 2, channels: int = 1,
                  sigma_input: bool = False, **overrides) -> UNet:
    """A U-Net from a size preset (``"small"``, ``"default"``, ``"large"``);
    ``sigma_input`` makes it a sigma-conditioned score network."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    cfg = dict(PRESETS[preset], dims=dims, in_channels=channels, out_channels=channels,
               sigma_input=bool(sigma_input),
               sigma_modulation=bool(sigma_input) and SIGMA_MODULATION)
    cfg.update(overrides)
    return UNet(UNetConfig(**cfg))


def _conv_macs_per_pixel(net: UNet) -> float:
    """Multiply-accumulates per input pixel of all convolutions (exact, by layer)."""
    total = 0.0
    scale = 1.0
    d = net.config.dims

    def conv_macs(conv):
        k = math.prod(conv.kernel_size)
        return conv.in_channels * conv.out_channels * k

    for i, block in enumerate(net.down):
        if i:
            scale /= 2 ** d
        total += scale * sum(conv_macs(m) for m in block if isinstance(m, (nn.Conv2d, nn.Conv3d)))
    for reduce, block in zip(net.reduce, net.up):
        total += scale * conv_macs(reduce)  # 1x1 before upsampling, at the coarser level
        scale *= 2 ** d
        total += scale * sum(conv_macs(m) for m in block if isinstance(m, (nn.Conv2d, nn.Conv3d)))
    total += conv_macs(net.head)
    return total


def network_info(net: UNet) -> dict:
    """Parameters, FLOPs per pixel (2 x MACs of the convolutions) and receptive field."""
    params = sum(p.numel() for p in net.parameters())
    cfg = net.config
    # receptive field radius: each 3x3 conv adds 1 at its level's scale
    radius = 0
    for level in range(cfg.depth + 1):
        radius += cfg.convs_per_level * 2 ** level
    for level in range(cfg.depth - 1, -1, -1):
        radius += cfg.convs_per_level * 2 ** level
    radius += sum(2 ** lvl for lvl in range(cfg.depth))  # pooling offsets
    return {
        "parameters": params,
        "flops_per_pixel": 2 * _conv_macs_per_pixel(net),
        "receptive_field_radius": radius,
        "multiple": cfg.multiple,
        **cfg.to_dict(),
    }
