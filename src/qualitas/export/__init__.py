"""Export trained quality models for deployment: ONNX, TorchScript, ``torch.export``
(``.pt2``) and OpenVINO IR, each with a ``model.json`` card, a parity check against
PyTorch and (ONNX) int8 quantisation. See docs/export.md.

- :func:`qualitas.export.pipeline.export_model` — run dir / checkpoint -> exported folder.
- :mod:`qualitas.export.card` — the ``model.json`` card (:class:`ModelCard`).
- :mod:`qualitas.export.formats` — ``FORMATS``: exporter and runner per format.
"""

from __future__ import annotations

from qualitas.export.card import CARD_FILE, ModelCard, read_card, write_card

__all__ = ["CARD_FILE", "ModelCard", "read_card", "write_card"]
