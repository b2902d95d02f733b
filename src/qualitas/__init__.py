"""qualitas: perceptual quality of images and video.

Scoring (full- and no-reference metrics, learned models), training quality models,
evaluation, export and deployment.
"""

from __future__ import annotations

from qualitas.version import __version__

__all__ = ["__version__", "load_model"]


def load_model(path: str, device: str = "cpu"):
    """Load a trained or exported quality model for scoring.

    Accepts a run directory or checkpoint (PyTorch), ``.onnx``, TorchScript ``.pt``,
    an exported program (``.pt2``) or an OpenVINO directory. Returns an object with
    ``score(image_or_video, ref=None)`` and ``score_batch(...)``.
    """
    from qualitas.runtime.models import load_model as _load

    return _load(path, device=device)
