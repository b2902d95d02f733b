"""Reading TensorFlow.js *layers-model* files (``model.json`` + binary weight shards).

Written by hand because no Python package reads this format without TensorFlow itself
(``tensorflowjs`` depends on it); the format is small and documented by the TF.js
converter: ``model.json`` holds ``modelTopology`` (a Keras model config) and
``weightsManifest``, a list of groups, each with ``paths`` (shard files, concatenated in
order) and ``weights`` (``name``, ``shape``, ``dtype`` and optional ``quantization``),
stored back to back, little-endian, in manifest order.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qualitas.errors import MediaError

_DTYPES = {"float32": "<f4", "int32": "<i4", "bool": "u1"}
_QUANT = {"uint8": "u1", "uint16": "<u2", "float16": "<f2"}


@dataclass(frozen=True)
class KerasLayer:
    """One layer of a Keras functional model config."""

    class_name: str
    name: str
    config: dict
    inputs: tuple[str, ...]
    """Names of the layers feeding it (first inbound node), in order."""


@dataclass
class LayersModel:
    """A TF.js layers model: its Keras layers in file order and its weights by name."""

    layers: list[KerasLayer]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    weights: dict[str, np.ndarray]
    """``"layer/kernel"`` -> float32 (or int32/bool) array in the stored (Keras) layout."""
    meta: dict
    """``format``, ``generatedBy``, ``convertedBy`` of the file."""


def read_weights(manifest: list[dict], folder: Path) -> dict[str, np.ndarray]:
    """Decode every weight of a ``weightsManifest`` whose shards lie in ``folder``.

    Quantised weights are dequantised: ``uint8``/``uint16`` as ``q * scale + min``,
    ``float16`` widened to float32.
    """
    out: dict[str, np.ndarray] = {}
    for group in manifest:
        parts = []
        for rel in group["paths"]:
            p = folder / rel
            if not p.is_file() or Path(rel).is_absolute() or ".." in Path(rel).parts:
                raise MediaError(f"{folder}: weight shard '{rel}' not found inside the model folder")
            parts.append(p.read_bytes())
        buf = b"".join(parts)
        offset = 0
        for w in group["weights"]:
            shape = tuple(int(s) for s in w["shape"])
            count = math.prod(shape)
            q = w.get("quantization")
            if q is not None:
                if q["dtype"] not in _QUANT:
                    raise MediaError(f"{w['name']}: unsupported quantisation dtype {q['dtype']!r}")
                dt = np.dtype(_QUANT[q["dtype"]])
            elif w["dtype"] in _DTYPES:
                dt = np.dtype(_DTYPES[w["dtype"]])
            else:
                raise MediaError(f"{w['name']}: unsupported weight dtype {w['dtype']!r}")
            size = count * dt.itemsize
            if offset + size > len(buf):
                raise MediaError(f"{folder}: weight shards end inside '{w['name']}' (truncated file?)")
            arr = np.frombuffer(buf, dt, count, offset).reshape(shape)
            offset += size
            if q is not None and q["dtype"] != "float16":
                arr = arr.astype(np.float32) * np.float32(q["scale"]) + np.float32(q["min"])
            elif dt.kind == "f":
                arr = arr.astype(np.float32)
            else:
                arr = arr.copy()
            out[w["name"]] = arr
        if offset != len(buf):
            raise MediaError(f"{folder}: {len(buf) - offset} bytes of the shards are not in the manifest")
    return out


def read_layers_model(model_json: str | Path) -> LayersModel:
    """Read a TF.js layers model (``model.json`` and its shards next to it)."""
    path = Path(model_json)
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise MediaError(f"{path}: not a readable model.json ({err})") from None
    if doc.get("format") not in (None, "layers-model") or "modelTopology" not in doc:
        raise MediaError(f"{path}: not a TF.js layers model (format {doc.get('format')!r})")
    topo = doc["modelTopology"]
    cfg = topo.get("model_config", topo)["config"]
    layers = []
    for layer in cfg["layers"]:
        nodes = layer.get("inbound_nodes") or [[]]
        layers.append(
            KerasLayer(layer["class_name"], layer["name"], layer["config"], tuple(n[0] for n in nodes[0]))
        )
    return LayersModel(
        layers=layers,
        inputs=tuple(n[0] for n in cfg["input_layers"]),
        outputs=tuple(n[0] for n in cfg["output_layers"]),
        weights=read_weights(doc["weightsManifest"], path.parent),
        meta={k: doc.get(k) for k in ("format", "generatedBy", "convertedBy")},
    )
