"""A face-aware dense backbone from MTCNN's pretrained P-Net (plug-in ``BACKBONES``).

MTCNN's first stage (Zhang et al. 2016) is a fully convolutional 12x12 face / non-face
classifier run over an image pyramid. Its weights ship inside the ``facenet-pytorch``
wheel (``facenet_pytorch/data/pnet.pt``, read with ``weights_only=True``; nothing is
downloaded), so it gives the importance predictor face-sensitive features without any
training data: for each pyramid level the P-Net trunk features (32 channels, ``conv3``)
and its face log-odds, resampled to one stride-4 grid and concatenated.

Pyramid: level 0 is the input upscaled by ``first_scale`` (1.5: a face of 8 low-res pixels
fills P-Net's 12-pixel window, i.e. a 32-pixel face after a 4x enhancement, MTCNN's
``min_face`` in the benchmark), each next level ``factor`` (0.709, MTCNN's) smaller, down
to faces of ``12 / (first_scale * factor**(levels-1))`` input pixels (63 with the
defaults). Levels are made one from the previous (bilinear), never smaller than 12 pixels.

The P-Net is frozen (``requires_grad=False``): only the predictor's head trains. The
network is facenet-pytorch's own ``PNet`` class (not a copy); the backbone exposes the
``net.feature_info`` / ``net.forward_intermediates`` interface of timm feature
extractors that :class:`qualitas.models.importance.ImportancePredictor` consumes.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from qualitas.errors import ConfigError, DependencyError
from qualitas.models.backbones import BACKBONES, load_weights

# MTCNN's input normalisation, (255 x - 127.5) / 128, as mean/std on [0, 1] images.
MTCNN_MEAN = (0.5, 0.5, 0.5)
MTCNN_STD = (128 / 255, 128 / 255, 128 / 255)


def _pnet_class() -> type[nn.Module]:
    try:
        from facenet_pytorch.models.mtcnn import PNet
    except ImportError as err:
        raise DependencyError(
            f"backbone mtcnn_pnet needs facenet-pytorch ({err}): pip install --no-deps facenet-pytorch==2.6.0"
        ) from None
    return PNet


def pnet_trunk(pnet: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """P-Net on normalised ``(B, 3, H, W)`` (H, W >= 12) -> trunk features ``(B, 32, h, w)``
    and face log-odds ``(B, 1, h, w)``, ``h = ceil((H - 2) / 2) - 4`` (stride 2, 12x12 window).

    Same layers as ``PNet.forward``; the log-odds replace its softmax (unsaturated).
    """
    y = pnet.prelu1(pnet.conv1(x))
    y = pnet.pool1(y)
    y = pnet.prelu2(pnet.conv2(y))
    y = pnet.prelu3(pnet.conv3(y))
    logits = pnet.conv4_1(y)
    return y, logits[:, 1:2] - logits[:, 0:1]


def pnet_pyramid(
    pnet: nn.Module,
    x: torch.Tensor,
    *,
    levels: int,
    first_scale: float,
    factor: float,
    stride: int,
    trunk: bool,
) -> torch.Tensor:
    """Multi-scale P-Net maps of normalised ``(B, 3, H, W)`` on the stride-``stride`` grid:
    ``(B, levels * (33 if trunk else 1), ceil(H / stride), ceil(W / stride))``.

    Per level: ``[32 trunk channels,] face log-odds``, bilinearly resampled to the grid
    (map position ``i`` of level ``k`` covers input pixels ``(2 i .. 2 i + 12) / s_k``;
    resampling aligns the map corners with the input corners, a sub-window offset the head
    learns around).
    """
    h, w = x.shape[-2:]
    out_size = (-(-h // stride), -(-w // stride))
    maps = []
    level = x
    s = first_scale
    for _ in range(levels):
        # Each level from the previous one: mild (<= 1.5x) bilinear steps alias less than
        # one big unfiltered resize, and export to ONNX as plain Resize nodes.
        size = (max(12, int(h * s + 0.5)), max(12, int(w * s + 0.5)))
        level = F.interpolate(level, size=size, mode="bilinear", align_corners=False)
        feats, logodds = pnet_trunk(pnet, level)
        parts = [feats, logodds] if trunk else [logodds]
        for p in parts:
            maps.append(F.interpolate(p, size=out_size, mode="bilinear", align_corners=False))
        s *= factor
    return torch.cat(maps, 1)


class PNetPyramidNet(nn.Module):
    """The dense network: timm-style ``feature_info`` (one stage at ``stride``) and
    ``forward_intermediates``; ``forward`` pools it to ``(B, num_features)``."""

    def __init__(
        self, pnet: nn.Module, *, levels: int, first_scale: float, factor: float, stride: int, trunk: bool
    ) -> None:
        super().__init__()
        self.pnet = pnet
        self.levels, self.first_scale, self.factor = levels, first_scale, factor
        self.stride, self.trunk = stride, trunk
        self.num_features = levels * (33 if trunk else 1)
        self.feature_info = [{"num_chs": self.num_features, "reduction": stride, "module": "pyramid"}]

    def pyramid(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised ``(B, 3, H, W)`` -> ``(B, num_features, ceil(H/stride), ceil(W/stride))``."""
        return pnet_pyramid(
            self.pnet,
            x,
            levels=self.levels,
            first_scale=self.first_scale,
            factor=self.factor,
            stride=self.stride,
            trunk=self.trunk,
        )

    def forward_intermediates(
        self,
        x: torch.Tensor,
        indices: list[int] | int | None = None,
        intermediates_only: bool = True,
        stop_early: bool = True,
    ) -> list[torch.Tensor]:
        """timm's interface with a single stage (index 0)."""
        if indices is not None and list(indices if isinstance(indices, list) else [indices]) != [0]:
            raise ConfigError(f"mtcnn_pnet has a single feature stage (0), asked for {indices}")
        return [self.pyramid(x)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pyramid(x).mean((2, 3))


class MTCNNPNetBackbone(nn.Module):
    """Frozen pretrained P-Net pyramid: ``(B, 3, H, W)`` normalised with ``mean``/``std``
    (MTCNN's) -> ``(B, num_features)`` pooled; dense maps through ``self.net``."""

    def __init__(
        self,
        *,
        in_chans: int = 3,
        pretrained_path: str | None = None,
        levels: int = 7,
        first_scale: float = 1.5,
        factor: float = 0.709,
        stride: int = 4,
        trunk: bool = True,
        name: str = "mtcnn_pnet",
    ) -> None:
        super().__init__()
        if in_chans != 3:
            raise ConfigError(f"backbone {name} takes RGB frames (in_chans=3), got in_chans={in_chans}")
        if levels < 1 or not 0 < factor < 1 or first_scale <= 0 or stride < 1:
            raise ConfigError(
                f"{name}: bad pyramid (levels={levels}, factor={factor}, first_scale={first_scale})"
            )
        pnet = _pnet_class()(pretrained=False)
        if pretrained_path:
            self.load_report = load_weights(pnet, pretrained_path)
        else:
            pnet.load_state_dict(torch.load(pnet_weights_path(), map_location="cpu", weights_only=True))
            self.load_report = None
        pnet.eval().requires_grad_(False)
        self.name = name
        self.net = PNetPyramidNet(
            pnet, levels=levels, first_scale=first_scale, factor=factor, stride=stride, trunk=trunk
        )
        self.num_features = self.net.num_features
        self.mean, self.std = MTCNN_MEAN, MTCNN_STD
        self.first_conv = "pnet.conv1"

    def train(self, mode: bool = True) -> MTCNNPNetBackbone:
        super().train(mode)
        self.net.pnet.eval()  # frozen: stays in inference mode (PNet sets training=False too)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def smallest_face(self) -> float:
        """Largest face (input pixels) the coarsest level fits in P-Net's 12-pixel window."""
        return 12 / (self.net.first_scale * self.net.factor ** (self.net.levels - 1))


def pnet_weights_path() -> Path:
    """``pnet.pt`` inside the installed facenet-pytorch wheel."""
    _pnet_class()
    spec = importlib.util.find_spec("facenet_pytorch")
    root = Path(next(iter(spec.submodule_search_locations)))  # type: ignore[union-attr, arg-type]
    return root / "data" / "pnet.pt"


@BACKBONES.register("mtcnn_pnet")
def mtcnn_pnet(*, in_chans: int = 3, pretrained_path: str | None = None) -> nn.Module:
    """Frozen MTCNN P-Net over a 7-level pyramid: 32 trunk channels + face log-odds per
    level (231 channels, stride 4)."""
    return MTCNNPNetBackbone(in_chans=in_chans, pretrained_path=pretrained_path)


@BACKBONES.register("mtcnn_pnet_faceness")
def mtcnn_pnet_faceness(*, in_chans: int = 3, pretrained_path: str | None = None) -> nn.Module:
    """Frozen MTCNN P-Net face log-odds only, 7 pyramid levels (7 channels, stride 4)."""
    return MTCNNPNetBackbone(
        in_chans=in_chans, pretrained_path=pretrained_path, trunk=False, name="mtcnn_pnet_faceness"
    )


__all__ = ["MTCNNPNetBackbone", "PNetPyramidNet", "pnet_pyramid", "pnet_trunk", "pnet_weights_path"]
