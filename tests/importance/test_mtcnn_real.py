"""The built-in MTCNN analytics with the real weights shipped in the facenet-pytorch wheel."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("facenet_pytorch")
skimage_data = pytest.importorskip("skimage.data")

from qualitas.importance.analytics import build_analytics  # noqa: E402


def _astronaut(size: int) -> torch.Tensor:
    img = torch.from_numpy(np.ascontiguousarray(skimage_data.astronaut())).permute(2, 0, 1).float() / 255
    return F.interpolate(img[None], size=(size, size), mode="bilinear", antialias=True, align_corners=False)


def test_mtcnn_finds_the_face_and_has_a_gradient():
    torch.set_num_threads(1)
    det = build_analytics("mtcnn")
    face = _astronaut(256)
    flat = torch.full_like(face, 0.5)
    face.requires_grad_(True)
    objective = det(face)
    assert objective.shape == (1,)
    assert objective.item() >= 0.9  # one confident face (Eileen Collins) in skimage's astronaut
    assert det(flat).item() == 0.0  # no face, no objective
    objective.sum().backward()
    grad = face.grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0
    # The sensitivity concentrates on the face (upper-middle of the photo), not the corners.
    g = grad.abs().sum(1)[0]
    assert g[40:140, 80:200].sum() > 5 * g[200:, :60].sum()
