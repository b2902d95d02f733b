"""Residual dense network (RDN) for single-image super-resolution, as trained by UpscalerJS.

Zhang et al., "Residual Dense Network for Image Super-Resolution" (CVPR 2018), in the
layout of the Keras models that the npm packages ``@upscalerjs/esrgan-slim`` /
``esrgan-medium`` ship as TF.js files (``models/x{2,3,4}/model.json``; layer names in
brackets)::

    x (B, 3, h, w), values 0..255
    s1 = conv3x3(x)                      [F_m1]      features channels
    f  = conv3x3(s1)                     [F_0]
    for d in 1..blocks:                  residual dense block d
        y = f
        for c in 1..layers: y = cat(y, relu(conv3x3(y)))   [F_d_c, growth channels each]
        f = conv1x1(y) + f               [LFF_d, LRL_d]
    g  = conv3x3(conv1x1(cat(all block outputs))) + s1      [GFF_1, GFF_2, FDF]
    u  = relu(conv5x5(g)); u = relu(conv3x3(u))             [UPN1, UPN2]
    u  = conv3x3(u) -> 3*scale^2 channels                   [UPN3]
    u  = nearest upsampling by scale | depth-to-space       [UPsample | PixelShuffle]
    out = conv3x3(u) -> 3 channels, values ~0..255          [SR]

Every convolution has a bias, stride 1 and 'same' padding (``k // 2`` on each side for odd
``k``). Written here because torchvision/timm have no RDN and the architecture must match
the Keras graph layer for layer to load the converted weights (:func:`rdn_arguments`
reads the arguments from a Keras topology and checks the whole graph against this module).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from qualitas.errors import MediaError, UsageError, first_line

UPSAMPLE = ("nearest", "shuffle")


def _conv(cin: int, cout: int, k: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, padding=k // 2)


class ResidualDenseBlock(nn.Module):
    """``layers`` densely connected 3x3 conv + ReLU (``growth`` channels each), a 1x1 fusion
    back to ``features`` channels and a residual connection: ``(B, F, h, w) -> (B, F, h, w)``."""

    def __init__(self, features: int, growth: int, layers: int) -> None:
        super().__init__()
        self.convs = nn.ModuleList(_conv(features + i * growth, growth, 3) for i in range(layers))
        self.fuse = nn.Conv2d(features + layers * growth, features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        for conv in self.convs:
            y = torch.cat([y, F.relu(conv(y))], 1)
        return self.fuse(y) + x


@dataclass(frozen=True)
class RDNArguments:
    """The arguments of :class:`RDN` (what a topology determines)."""

    scale: int
    blocks: int
    layers: int
    growth: int
    features: int = 64
    up_features: tuple[int, int] = (64, 32)
    upsample: str = "nearest"
    channels: int = 3

    def to_dict(self) -> dict:
        return {**asdict(self), "up_features": list(self.up_features)}


class RDN(nn.Module):
    """Residual dense network ``(B, channels, h, w) -> (B, channels, scale*h, scale*w)``.

    Inputs and outputs are on the 0..255 scale the UpscalerJS weights were trained on (the
    output is not clamped). ``upsample="nearest"`` repeats each pixel of the
    ``channels*scale^2`` UPN3 maps (Keras ``UpSampling2D``) before the last conv;
    ``"shuffle"`` rearranges them to ``channels`` maps (depth-to-space).
    """

    def __init__(
        self,
        *,
        scale: int,
        blocks: int,
        layers: int,
        growth: int,
        features: int = 64,
        up_features: tuple[int, int] = (64, 32),
        upsample: str = "nearest",
        channels: int = 3,
    ) -> None:
        super().__init__()
        if upsample not in UPSAMPLE:
            raise ValueError(f"upsample must be one of {UPSAMPLE}, got {upsample!r}")
        self.args = RDNArguments(
            scale, blocks, layers, growth, features, tuple(up_features), upsample, channels
        )
        self.scale, self.upsample = scale, upsample
        self.sfe1 = _conv(channels, features, 3)
        self.sfe2 = _conv(features, features, 3)
        self.blocks = nn.ModuleList(ResidualDenseBlock(features, growth, layers) for _ in range(blocks))
        self.gff1 = nn.Conv2d(blocks * features, features, 1)
        self.gff2 = _conv(features, features, 3)
        u1, u2 = up_features
        self.up1 = _conv(features, u1, 5)
        self.up2 = _conv(u1, u2, 3)
        self.up3 = _conv(u2, channels * scale * scale, 3)
        self.tail = _conv(channels * scale * scale if upsample == "nearest" else channels, channels, 3)

    @classmethod
    def from_arguments(cls, a: RDNArguments) -> RDN:
        return cls(
            scale=a.scale,
            blocks=a.blocks,
            layers=a.layers,
            growth=a.growth,
            features=a.features,
            up_features=a.up_features,
            upsample=a.upsample,
            channels=a.channels,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x (B, C, h, w)`` 0..255 -> ``(B, C, scale*h, scale*w)`` ~0..255."""
        s1 = self.sfe1(x)
        f = self.sfe2(s1)
        outs = []
        for block in self.blocks:
            f = block(f)
            outs.append(f)
        g = self.gff2(self.gff1(torch.cat(outs, 1))) + s1
        u = self.up3(F.relu(self.up2(F.relu(self.up1(g)))))
        if self.upsample == "nearest":
            u = F.interpolate(u, scale_factor=self.scale, mode="nearest")
        else:
            u = F.pixel_shuffle(u, self.scale)
        return self.tail(u)


# ---------------------------------------------------------------- Keras topology <-> RDN


@dataclass(frozen=True)
class _Node:
    class_name: str
    name: str
    inputs: tuple[str, ...]
    filters: int | None = None
    kernel: int | None = None
    param: str | None = None
    """Prefix of the torch parameters (``blocks.0.convs.0``) for a Conv2D."""


def keras_graph(a: RDNArguments) -> list[_Node]:
    """The Keras layer graph of :class:`RDN` with arguments ``a`` (names as in UpscalerJS)."""
    n: list[_Node] = [_Node("InputLayer", "LR", ())]
    n.append(_Node("Conv2D", "F_m1", ("LR",), a.features, 3, "sfe1"))
    n.append(_Node("Conv2D", "F_0", ("F_m1",), a.features, 3, "sfe2"))
    prev = "F_0"
    for d in range(1, a.blocks + 1):
        for c in range(1, a.layers + 1):
            # Each dense layer reads the running concatenation and extends it by its output.
            src = prev if c == 1 else f"RDB_Concat_{d}_{c - 1}"
            n.append(_Node("Conv2D", f"F_{d}_{c}", (src,), a.growth, 3, f"blocks.{d - 1}.convs.{c - 1}"))
            n.append(_Node("Activation", f"F_{d}_{c}_Relu", (f"F_{d}_{c}",)))
            n.append(_Node("Concatenate", f"RDB_Concat_{d}_{c}", (src, f"F_{d}_{c}_Relu")))
        n.append(
            _Node(
                "Conv2D", f"LFF_{d}", (f"RDB_Concat_{d}_{a.layers}",), a.features, 1, f"blocks.{d - 1}.fuse"
            )
        )
        n.append(_Node("Add", f"LRL_{d}", (f"LFF_{d}", prev)))
        prev = f"LRL_{d}"
    n.append(_Node("Concatenate", "LRLs_Concat", tuple(f"LRL_{d}" for d in range(1, a.blocks + 1))))
    n.append(_Node("Conv2D", "GFF_1", ("LRLs_Concat",), a.features, 1, "gff1"))
    n.append(_Node("Conv2D", "GFF_2", ("GFF_1",), a.features, 3, "gff2"))
    n.append(_Node("Add", "FDF", ("GFF_2", "F_m1")))
    n.append(_Node("Conv2D", "UPN1", ("FDF",), a.up_features[0], 5, "up1"))
    n.append(_Node("Activation", "UPN1_Relu", ("UPN1",)))
    n.append(_Node("Conv2D", "UPN2", ("UPN1_Relu",), a.up_features[1], 3, "up2"))
    n.append(_Node("Activation", "UPN2_Relu", ("UPN2",)))
    n.append(_Node("Conv2D", "UPN3", ("UPN2_Relu",), a.channels * a.scale**2, 3, "up3"))
    up = "UPsample" if a.upsample == "nearest" else "PixelShuffle"
    n.append(_Node("UpSampling2D" if a.upsample == "nearest" else f"PixelShuffle{a.scale}x", up, ("UPN3",)))
    n.append(_Node("Conv2D", "SR", (up,), a.channels, 3, "tail"))
    return n


def rdn_arguments(layers: list) -> RDNArguments:
    """Read :class:`RDNArguments` from a Keras layer list (:class:`qualitas.io.tfjs.KerasLayer`)
    and check that the whole graph is exactly the one :class:`RDN` computes.

    Raises a one-line ``MediaError`` naming the first layer that differs.
    """
    by_name = {layer.name: layer for layer in layers}

    def filters(name: str) -> int:
        if name not in by_name:
            raise MediaError(f"not an RDN topology: no layer '{name}'")
        return int(by_name[name].config["filters"])

    blocks = sum(1 for name in by_name if name.startswith("LFF_"))
    n_layers = sum(1 for name in by_name if name.startswith("F_1_") and not name.endswith("_Relu"))
    shuffle = [layer for layer in layers if layer.class_name.startswith("PixelShuffle")]
    if shuffle:
        upsample, scale = "shuffle", int(shuffle[0].class_name.removeprefix("PixelShuffle").rstrip("x"))
    elif "UPsample" in by_name:
        size = by_name["UPsample"].config.get("size", [0, 0])
        upsample, scale = "nearest", int(size[0])
    else:
        raise MediaError("not an RDN topology: no UPsample or PixelShuffle layer")
    inp = by_name.get("LR")
    channels = int(inp.config["batch_input_shape"][-1]) if inp is not None else 3
    args = RDNArguments(
        scale=scale,
        blocks=blocks,
        layers=n_layers,
        growth=filters("F_1_1"),
        features=filters("F_m1"),
        up_features=(filters("UPN1"), filters("UPN2")),
        upsample=upsample,
        channels=channels,
    )
    expected = keras_graph(args)
    if len(expected) != len(layers):
        raise MediaError(f"RDN topology has {len(layers)} layers, expected {len(expected)} for {args}")
    for want, got in zip(expected, layers):
        _check_layer(want, got, args)
    return args


def _check_layer(want: _Node, got, args: RDNArguments) -> None:
    where = f"RDN topology layer '{got.name}'"
    if (got.class_name, got.name, tuple(got.inputs)) != (want.class_name, want.name, want.inputs):
        raise MediaError(
            f"{where}: {got.class_name}{list(got.inputs)}, expected {want.class_name} '{want.name}'{list(want.inputs)}"
        )
    c = got.config
    if want.class_name == "Conv2D":
        k = list(c.get("kernel_size", []))
        ok = (
            int(c["filters"]) == want.filters
            and k == [want.kernel, want.kernel]
            and list(c.get("strides", [1, 1])) == [1, 1]
            and list(c.get("dilation_rate", [1, 1])) == [1, 1]
            and c.get("activation", "linear") == "linear"
            and c.get("use_bias", True)
            and c.get("data_format", "channels_last") == "channels_last"
            and (c.get("padding") == "same" or want.kernel == 1)
        )
        if not ok:
            raise MediaError(f"{where}: unexpected conv config {c}")
    elif want.class_name == "Activation" and c.get("activation") != "relu":
        raise MediaError(f"{where}: activation {c.get('activation')!r}, expected relu")
    elif want.class_name == "Concatenate" and c.get("axis", -1) not in (-1, 3):
        raise MediaError(f"{where}: concatenates on axis {c.get('axis')}, expected channels")
    elif want.class_name == "UpSampling2D" and (
        list(c.get("size", [])) != [args.scale, args.scale] or c.get("interpolation", "nearest") != "nearest"
    ):
        raise MediaError(f"{where}: upsampling {c.get('size')} {c.get('interpolation')}, expected nearest")


def keras_state_dict(weights: dict[str, np.ndarray], args: RDNArguments) -> dict[str, torch.Tensor]:
    """Keras weights (``"F_0/kernel"`` HWIO, ``"F_0/bias"``) -> the state dict of :class:`RDN`.

    Kernels ``(kh, kw, in, out)`` become ``(out, in, kh, kw)``. With depth-to-space the
    UPN3 output channels are reordered: TF's ``depth_to_space`` (NHWC) reads channel
    ``(dy*s + dx)*C + c`` where ``pixel_shuffle`` reads ``c*s^2 + dy*s + dx``.
    """
    out: dict[str, torch.Tensor] = {}
    used = set()
    for node in keras_graph(args):
        if node.class_name != "Conv2D":
            continue
        kname, bname = f"{node.name}/kernel", f"{node.name}/bias"
        for key in (kname, bname):
            if key not in weights:
                raise MediaError(f"RDN weights: '{key}' is missing")
        kernel = np.asarray(weights[kname], dtype=np.float32)
        bias = np.asarray(weights[bname], dtype=np.float32)
        if kernel.ndim != 4 or kernel.shape[-1] != node.filters or bias.shape != (node.filters,):
            raise MediaError(
                f"RDN weights: '{kname}' has shape {kernel.shape}, expected (k, k, in, {node.filters})"
            )
        w = torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)))
        b = torch.from_numpy(bias.copy())
        if node.name == "UPN3" and args.upsample == "shuffle":
            s2, ch = args.scale**2, args.channels
            perm = torch.tensor([(t % s2) * ch + t // s2 for t in range(ch * s2)])
            w, b = w[perm], b[perm]
        out[f"{node.param}.weight"], out[f"{node.param}.bias"] = w.contiguous(), b
        used.update((kname, bname))
    extra = sorted(set(weights) - used)
    if extra:
        raise MediaError(f"RDN weights: {len(extra)} tensors the topology does not use, e.g. '{extra[0]}'")
    return out


# ---------------------------------------------------------------- shipped weights

WEIGHTS_MANIFEST = "rdn.json"


def shipped_weights_dir() -> Path:
    """``qualitas/weights/rdn``: the converted UpscalerJS models (``weights/README.md``)."""
    return Path(__file__).resolve().parent.parent / "weights" / "rdn"


def load_rdn(*, scale: int, variant: str = "medium", folder: str | Path | None = None) -> RDN:
    """The converted RDN for ``variant`` and ``scale`` from ``folder`` (default: the shipped
    weights), built from the arguments its ``rdn.json`` records and loaded with
    ``weights_only=True``. A missing variant/scale is a one-line ``UsageError`` listing what
    the folder holds."""
    d = Path(folder) if folder is not None else shipped_weights_dir()
    manifest = d / WEIGHTS_MANIFEST
    if not manifest.is_file():
        raise UsageError(
            f"{d}: no {WEIGHTS_MANIFEST} (convert with python -m qualitas.models.convert_upscalerjs)"
        )
    entries = json.loads(manifest.read_text())["models"]
    match = [e for e in entries if e["variant"] == variant and int(e["scale"]) == scale]
    if not match:
        scales: dict[str, list[str]] = {}
        for e in entries:
            scales.setdefault(e["variant"], []).append(f"x{e['scale']}")
        have = ", ".join(f"{v} {'/'.join(s)}" for v, s in sorted(scales.items()))
        raise UsageError(f"no RDN weights for variant={variant} scale={scale} (available: {have})")
    a = match[0]["arguments"]
    args = RDNArguments(
        scale=int(a["scale"]),
        blocks=int(a["blocks"]),
        layers=int(a["layers"]),
        growth=int(a["growth"]),
        features=int(a["features"]),
        up_features=(int(a["up_features"][0]), int(a["up_features"][1])),
        upsample=str(a["upsample"]),
        channels=int(a["channels"]),
    )
    net = RDN.from_arguments(args)
    path = d / match[0]["file"]
    try:
        net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    except (OSError, RuntimeError, EOFError) as err:
        raise UsageError(f"{path}: not loadable RDN weights ({first_line(err)})") from None
    return net.eval()
