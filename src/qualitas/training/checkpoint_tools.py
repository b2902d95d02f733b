"""Checkpoint tools: look inside, rename keys, strip to the model weights
(``qualitas checkpoint show|rename|strip``; ObjectiveMTL's ``tools/model_export``).

Pure functions over plain data, so training code (e.g. writing a clean backbone after
self-supervised pretraining) calls them directly:

- :func:`read_checkpoint_file` — a Lightning ``.ckpt``, a ``torch.save``\\ d dict or state
  dict (``.pt``/``.pth``/``.bin``; always ``torch.load(weights_only=True)``) or a
  ``.safetensors`` file -> a dict (one-line :class:`UsageError` for missing/corrupt files);
- :func:`find_state` — where the weights are in it (``state_dict``, ``model``, … or the
  object itself) -> ``(container_key, {name: tensor})``;
- :func:`summarize` — keys, shapes, dtypes, parameter counts, hyper-parameters;
- :func:`rename_keys` — prefix rules ``OLD=NEW``;
- :func:`strip_state` — model weights only: drop teacher/EMA/momentum-encoder copies, strip
  a ``module.``/``model.`` wrapper prefix, optionally keep one sub-prefix (a backbone);
- :func:`write_state` — atomically, as ``torch.save`` or ``.safetensors`` by suffix.

Optimizer, scheduler, loop and callback state never reach :func:`strip_state`'s output: it
returns tensors of the weights mapping only.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from qualitas.errors import UsageError, first_line

STATE_KEYS = ("state_dict", "model_state_dict", "model", "module", "net", "network", "weights", "params")
"""Keys under which checkpoints of common trainers keep the network's weights (Lightning's
``state_dict`` first), searched in this order."""

TRAINING_STATE_KEYS = (
    "optimizer_states",
    "lr_schedulers",
    "loops",
    "callbacks",
    "optimizer",
    "optimizer_state_dict",
    "scheduler",
    "lr_scheduler",
    "scaler",
    "amp",
    "MixedPrecision",
)
"""Top-level entries that hold training state (optimizer moments, schedulers, loop
progress): reported by :func:`summarize`, never written by :func:`strip_state`."""

DROP_PREFIXES = (
    "teacher.",
    "teacher_model.",
    "ema.",
    "ema_model.",
    "model_ema.",
    "momentum_encoder.",
    "momentum_model.",
    "target_encoder.",
    "target_network.",
    "key_encoder.",
)
"""Weight copies that only training uses: distillation teachers, EMA copies, momentum /
target encoders of self-supervised methods (MoCo, BYOL, DINO). Matched after any leading
``module.``/``model.`` wrapper."""

WRAPPER_PREFIXES = ("module.", "model.", "_orig_mod.")
"""Prefixes wrappers add to every key: DDP/DataParallel (``module.``), Lightning's task
(``model.``), ``torch.compile`` (``_orig_mod.``)."""

HPARAM_KEYS = ("hyper_parameters", "hparams", "args", "config", "cfg")
"""Top-level entries holding hyper-parameters (Lightning: ``hyper_parameters``)."""


# --------------------------------------------------------------------------- reading


def read_checkpoint_file(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint or weights file into a dict, safely.

    ``.safetensors`` files give ``{"state_dict": {...}, "metadata": {...}}``; anything
    else goes through ``torch.load(weights_only=True)``
    (:func:`qualitas.training.run.read_checkpoint`), and a bare state dict is returned
    as it is. Missing, empty or corrupt files are a one-line :class:`UsageError`.
    """
    p = Path(path)
    if not p.exists():
        raise UsageError(f"checkpoint not found: {p}")
    if p.is_dir():
        raise UsageError(f"{p}: is a folder; give the checkpoint file (e.g. {p}/checkpoints/best.ckpt)")
    if p.suffix.lower() == ".safetensors":
        return _read_safetensors(p)
    from qualitas.training.run import read_checkpoint

    return read_checkpoint(p)


def _read_safetensors(p: Path) -> dict[str, Any]:
    try:
        from safetensors import safe_open
    except ImportError:
        raise UsageError(
            f"{p}: reading .safetensors needs the safetensors package (pip install safetensors)"
        ) from None
    try:
        tensors: dict[str, torch.Tensor] = {}
        with safe_open(str(p), framework="pt", device="cpu") as fh:
            metadata = dict(fh.metadata() or {})
            for key in fh.keys():
                tensors[key] = fh.get_tensor(key)
    except Exception as err:  # noqa: BLE001 - safetensors raises its own (Rust) error types
        raise UsageError(f"{p}: not a readable safetensors file ({first_line(err)})") from None
    return {"state_dict": tensors, "metadata": metadata}


def find_state(ckpt: Mapping[str, Any]) -> tuple[str | None, dict[str, torch.Tensor]]:
    """``(key, weights)``: the weights mapping of a checkpoint and the top-level key it is
    under (``None`` when the checkpoint is itself a state dict). Non-tensor entries of the
    mapping are left out. No tensors anywhere is a :class:`UsageError`."""
    for key in STATE_KEYS:
        inner = ckpt.get(key)
        if isinstance(inner, Mapping) and any(isinstance(v, torch.Tensor) for v in inner.values()):
            return key, {str(k): v for k, v in inner.items() if isinstance(v, torch.Tensor)}
    tensors = {str(k): v for k, v in ckpt.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise UsageError(
            f"no weights found: no tensors at the top level or under any of {', '.join(STATE_KEYS)}"
        )
    return None, tensors


# --------------------------------------------------------------------------- show


@dataclass
class TensorInfo:
    key: str
    shape: tuple[int, ...]
    dtype: str
    numel: int


@dataclass
class CheckpointSummary:
    """What :func:`summarize` reports (``to_dict`` is the ``--json`` document)."""

    path: str
    kind: str
    """``lightning``, ``qualitas-lightning``, ``safetensors``, ``state_dict`` or ``dict``."""
    container: str | None
    tensors: list[TensorInfo]
    training_state: list[str] = field(default_factory=list)
    """Top-level entries with training state (optimizer, schedulers, loops, callbacks)."""
    meta: dict[str, Any] = field(default_factory=dict)
    """epoch, global_step, versions, hyper-parameters, qualitas model info, metadata."""
    other_keys: list[str] = field(default_factory=list)

    @property
    def num_params(self) -> int:
        """Elements of floating-point tensors (parameters and float buffers such as
        BatchNorm statistics; integer counters are not counted)."""
        return sum(t.numel for t in self.tensors if _is_float(t.dtype))

    def groups(self, depth: int | None = None) -> dict[str, int]:
        """Floating-point elements per key prefix of ``depth`` components; by default the
        shallowest depth (up to 4) that splits the keys into more than one group."""
        if depth is None:
            depth = 1
            while depth < 4 and len(self.groups(depth)) == 1:
                depth += 1
        out: dict[str, int] = {}
        for t in self.tensors:
            if _is_float(t.dtype):
                head = ".".join(t.key.split(".")[:depth])
                out[head] = out.get(head, 0) + t.numel
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "kind": self.kind,
            "container": self.container,
            "num_tensors": len(self.tensors),
            "num_params": self.num_params,
            "groups": self.groups(),
            "dtypes": sorted({t.dtype for t in self.tensors}),
            "training_state": self.training_state,
            "meta": _jsonable(self.meta),
            "other_keys": self.other_keys,
            "tensors": [
                {"key": t.key, "shape": list(t.shape), "dtype": t.dtype, "numel": t.numel}
                for t in self.tensors
            ],
        }

    def text(self, *, limit: int | None = None) -> str:
        """A human-readable report; ``limit`` caps the per-tensor table (``None``: all)."""
        lines = [
            f"{self.path}: {self.kind}" + (f" (weights under '{self.container}')" if self.container else ""),
            f"tensors: {len(self.tensors)}, parameters: {self.num_params:,} ({_human(self.num_params)}), "
            f"dtypes: {', '.join(sorted({t.dtype for t in self.tensors}))}",
        ]
        for head, n in self.groups().items():
            lines.append(f"  {head + '.':<40} {n:>14,}")
        if self.training_state:
            lines.append(f"training state: {', '.join(self.training_state)}")
        for k, v in self.meta.items():
            lines.append(f"{k}: {_short(v)}")
        if self.other_keys:
            lines.append(f"other entries: {', '.join(self.other_keys)}")
        width = max((len(t.key) for t in self.tensors), default=10)
        shown = self.tensors if limit is None else self.tensors[:limit]
        lines.append("")
        for t in shown:
            lines.append(f"{t.key:<{width}}  {str(list(t.shape)):<22} {t.dtype:<9} {t.numel:>12,}")
        if len(shown) < len(self.tensors):
            lines.append(f"... {len(self.tensors) - len(shown)} more (--all shows every tensor)")
        return "\n".join(lines)


def summarize(ckpt: Mapping[str, Any], path: str = "") -> CheckpointSummary:
    """Keys, shapes, dtypes and counts of the weights; hyper-parameters and what else the
    checkpoint holds."""
    container, state = find_state(ckpt)
    tensors = [
        TensorInfo(k, tuple(int(s) for s in v.shape), _dtype(v), int(v.numel())) for k, v in state.items()
    ]
    meta: dict[str, Any] = {}
    for key in ("epoch", "global_step", "pytorch-lightning_version"):
        if key in ckpt:
            meta[key] = ckpt[key]
    for key in HPARAM_KEYS:
        if isinstance(ckpt.get(key), Mapping):
            meta[key] = dict(ckpt[key])
    q = ckpt.get("qualitas")
    if isinstance(q, Mapping) and isinstance(q.get("config"), Mapping) and "hyper_parameters" not in meta:
        meta["hyper_parameters"] = dict(q["config"])  # qualitas runs keep the resolved config here
    if isinstance(q, Mapping):
        spec = q.get("spec") if isinstance(q.get("spec"), Mapping) else {}
        meta["qualitas"] = {
            k: v
            for k, v in {
                "model": q.get("model"),
                "arch": spec.get("arch"),
                "backbone": spec.get("backbone"),
                "input_size": q.get("input_size"),
                "target": q.get("target"),
                "dataset": q.get("dataset"),
            }.items()
            if v is not None
        }
    if isinstance(ckpt.get("metadata"), Mapping) and ckpt["metadata"]:
        meta["metadata"] = dict(ckpt["metadata"])
    training = [k for k in ckpt if k in TRAINING_STATE_KEYS]
    known = {container, "qualitas", "metadata", *meta, *training}
    other = [str(k) for k in ckpt if k not in known and not isinstance(ckpt[k], torch.Tensor)]
    if "pytorch-lightning_version" in ckpt:
        kind = "qualitas-lightning" if isinstance(q, Mapping) else "lightning"
    elif container == "state_dict" and set(ckpt) <= {"state_dict", "metadata"}:
        kind = "safetensors" if "metadata" in ckpt else "state_dict"
    elif container is None:
        kind = "state_dict"
    else:
        kind = "dict"
    return CheckpointSummary(str(path), kind, container, tensors, training, meta, other)


# --------------------------------------------------------------------------- rename / strip


def parse_rules(rules: Iterable[str]) -> list[tuple[str, str]]:
    """``["OLD=NEW", ...]`` -> ``[(OLD, NEW), ...]``; ``NEW`` may be empty (remove ``OLD``)."""
    out = []
    for rule in rules:
        old, sep, new = str(rule).partition("=")
        if not sep or not old:
            raise UsageError(f"--rule {rule!r}: expected OLD=NEW (a key prefix and its replacement)")
        out.append((old, new))
    return out


def rename_keys(
    state: Mapping[str, Any], rules: Sequence[tuple[str, str]]
) -> tuple[dict[str, Any], dict[str, int]]:
    """Rename key prefixes: each key takes the first rule whose ``OLD`` it starts with
    (``OLD`` replaced by ``NEW``); other keys stay. Returns ``(renamed, matches per rule)``.

    Two keys ending up with the same name is a :class:`UsageError` (nothing is dropped
    silently)."""
    out: dict[str, Any] = {}
    counts = {f"{o}={n}": 0 for o, n in rules}
    origin: dict[str, str] = {}
    for key, value in state.items():
        new = key
        for old, rep in rules:
            if key.startswith(old):
                new = rep + key[len(old) :]
                counts[f"{old}={rep}"] += 1
                break
        if new in out:
            raise UsageError(f"renaming makes '{origin[new]}' and '{key}' both '{new}'")
        out[new] = value
        origin[new] = key
    return out, counts


def strip_state(
    state: Mapping[str, Any],
    keep_prefix: str | None = None,
    drop: Sequence[str] = DROP_PREFIXES,
    strip: Sequence[str] = WRAPPER_PREFIXES,
) -> dict[str, torch.Tensor]:
    """The model weights of a checkpoint's weights mapping ``{name: tensor}``.

    1. tensors only (anything else in the mapping is left out);
    2. keys starting with one of ``drop`` — after any leading ``strip`` wrapper prefixes —
       are dropped (teacher, EMA, momentum-encoder copies; pass ``drop=()`` to keep all);
    3. a ``strip`` prefix that *every* remaining key has is removed, repeatedly
       (``model.`` of Lightning, ``module.`` of DDP), so real submodules named ``model``
       inside a network are left alone;
    4. with ``keep_prefix`` (e.g. ``"backbone."``), only keys under it are kept, relative
       to it (``backbone.conv1.weight`` -> ``conv1.weight``): a backbone to load on its own.

    Returns a new dict; the tensors are not copied. No key left is a :class:`UsageError`
    naming the top-level prefixes there were.
    """
    tensors = {str(k): v for k, v in state.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise UsageError("no tensors to strip")
    kept = (
        {k: v for k, v in tensors.items() if not _bare(k, strip).startswith(tuple(drop))} if drop else tensors
    )
    if not kept:
        raise UsageError(
            f"every key starts with a dropped prefix ({', '.join(drop)}); pass drop=() / --no-drop"
        )
    changed = True
    while changed:
        changed = False
        for prefix in strip:
            if all(k.startswith(prefix) for k in kept):
                kept = {k[len(prefix) :]: v for k, v in kept.items()}
                changed = True
    if keep_prefix:
        sub = {k[len(keep_prefix) :]: v for k, v in kept.items() if k.startswith(keep_prefix)}
        if not sub:
            heads = sorted({".".join(k.split(".")[:2]) + "." for k in kept})
            more = f" (+{len(heads) - 12} more)" if len(heads) > 12 else ""
            raise UsageError(
                f"no key starts with '{keep_prefix}' (after stripping wrappers); prefixes there are: "
                f"{', '.join(heads[:12])}{more}"
            )
        kept = sub
    return kept


def _bare(key: str, strip: Sequence[str]) -> str:
    changed = True
    while changed:
        changed = False
        for prefix in strip:
            if key.startswith(prefix):
                key = key[len(prefix) :]
                changed = True
    return key


def replace_state(ckpt: Mapping[str, Any], container: str | None, state: Mapping[str, Any]) -> dict[str, Any]:
    """``ckpt`` with its weights mapping (under ``container``; ``None``: the whole) replaced."""
    if container is None:
        other = {k: v for k, v in ckpt.items() if not isinstance(v, torch.Tensor)}
        return {**other, **state}
    return {**ckpt, container: dict(state)}


# --------------------------------------------------------------------------- writing


def write_state(obj: Mapping[str, Any], path: str | os.PathLike) -> Path:
    """Write atomically (a temporary file in the same folder, then a rename).

    ``.safetensors``: ``obj`` must be ``{name: tensor}`` (a stripped state); tensors are
    made contiguous and stored without shared memory. Anything else: ``torch.save`` of
    plain data, so the file loads with ``torch.load(weights_only=True)``.
    """
    from qualitas.files import temp_for

    p = Path(path)
    if p.exists() and p.is_dir():
        raise UsageError(f"--out {p} is a folder; give a file name")
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_for(p, suffix=p.suffix or ".tmp")
    try:
        if p.suffix.lower() == ".safetensors":
            try:
                from safetensors.torch import save_file
            except ImportError:
                raise UsageError(
                    "writing .safetensors needs the safetensors package (pip install safetensors)"
                ) from None
            if not all(isinstance(v, torch.Tensor) for v in obj.values()):
                raise UsageError(
                    f"{p}: .safetensors holds tensors only; write a checkpoint with this content as .pt"
                )
            save_file({k: v.detach().contiguous().clone() for k, v in obj.items()}, tmp)
        else:
            torch.save(dict(obj), tmp)
        os.replace(tmp, p)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return p


# --------------------------------------------------------------------------- helpers


def _dtype(t: torch.Tensor) -> str:
    return str(t.dtype).removeprefix("torch.")


def _is_float(dtype: str) -> bool:
    return dtype.startswith(("float", "bfloat", "complex"))


def _human(n: int) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.2f}{unit}"
    return str(n)


def _short(v: Any, width: int = 160) -> str:
    text = repr(v) if not isinstance(v, str) else v
    return text if len(text) <= width else text[: width - 3] + "..."


def _jsonable(v: Any) -> Any:
    """Plain JSON data (tensors -> their shape, paths -> str, non-finite -> None)."""
    if isinstance(v, Mapping):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, torch.Tensor):
        return {"tensor": list(v.shape), "dtype": _dtype(v)}
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if v is None or isinstance(v, (bool, int, str)):
        return v
    return str(v)
