"""The default models shipped inside the package: ``nr-image`` and ``nr-video``.

Each lives in ``qualitas/weights/<name>/`` as an exported ONNX graph plus its card
(``model.json``, read by :func:`qualitas.runtime.models.load_model`). Names resolve to
those folders, so ``qualitas score --model nr-video clip.mp4`` needs no path, and
``qualitas score clip.mp4`` (no metric, model or reference) uses the model of the
media kind. How they were trained and how well they do: docs/default-models.md.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from qualitas.errors import QualitasError, UsageError

DEFAULT_MODELS: dict[str, str] = {
    "nr-image": "no-reference image quality: the synth teacher score (MS-SSIM + PSNR, 0-100)",
    "nr-video": "no-reference video quality: predicted VMAF (vmaf_v0.6.1, 0-100)",
}
"""Name -> one-line description of every shipped default model."""

DEFAULT_FOR_KIND: dict[str, str] = {"image": "nr-image", "video": "nr-video"}
"""The default no-reference model of each media kind."""

CARD_FILE = "model.json"


def weights_dir() -> Path:
    """The folder holding the shipped models (``qualitas/weights``)."""
    return Path(__file__).resolve().parent.parent / "weights"


def is_default_name(name: str | os.PathLike) -> bool:
    """True when ``name`` is a default model name (not a path)."""
    return isinstance(name, str) and name in DEFAULT_MODELS


def default_model_path(name: str) -> Path:
    """The card (``model.json``) of default model ``name``.

    Unknown names and a package installed without its weights are usage errors.
    """
    if name not in DEFAULT_MODELS:
        raise UsageError(f"unknown default model '{name}'; available: {', '.join(DEFAULT_MODELS)}")
    card = weights_dir() / name / CARD_FILE
    if not card.is_file():
        raise UsageError(
            f"default model '{name}' is not installed ({card} missing); reinstall qualitas "
            f"or train it with `python benchmarks/train_defaults.py {name}`"
        )
    return card


def resolve_model(spec: str | os.PathLike) -> str:
    """A ``--model`` argument as a path: default names map to their card, paths pass through.

    A file or folder that exists under the name wins over the default of that name.
    """
    if is_default_name(spec) and not Path(spec).exists():
        return str(default_model_path(str(spec)))
    return os.fspath(spec)


def default_model_for(kinds: Iterable[str]) -> str:
    """The default model name for inputs of ``kinds`` ("image" / "video").

    Images and videos together need two different models: a usage error that says how to
    score them.
    """
    found = sorted(set(kinds))
    if not found:
        raise UsageError("no media files found in the given inputs")
    if len(found) > 1:
        raise UsageError(
            "images and videos together: score them in separate runs (defaults: nr-image for "
            "images, nr-video for videos) or name one with --model / --metric"
        )
    kind = found[0]
    if kind not in DEFAULT_FOR_KIND:
        raise UsageError(f"no default model for media of kind '{kind}'")
    return DEFAULT_FOR_KIND[kind]


def load_default(name: str, device: str = "cpu"):
    """Load default model ``name`` (a :class:`qualitas.runtime.models.QualityModel`)."""
    from qualitas.runtime.models import load_model

    return load_model(default_model_path(name), device=device)


def default_model_for_pairs(pairs: Iterable) -> str:
    """:func:`default_model_for` the distorted inputs of ``pairs`` (``qualitas.io.pairing.Pair``).

    Inputs whose kind cannot be told (already failed pairs, unknown extensions) are left to
    the scoring run, which reports them.
    """
    from qualitas.io.media import media_kind

    kinds = set()
    for p in pairs:
        if getattr(p, "error", None) is not None:
            continue
        try:
            kinds.add(media_kind(p.dist))
        except QualitasError:
            continue
    return default_model_for(kinds or {"image"})
