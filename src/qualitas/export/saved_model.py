"""TensorFlow SavedModel export (``--format saved_model``) and a TensorFlow-runtime runner.

The SavedModel is converted from the ONNX export by onnx2tf (a maintained ONNX -> TF/LiteRT
converter). onnx2tf pins exact numpy/onnx/onnxruntime/protobuf/TensorFlow versions
(1.29.x: numpy 1.26, onnx 1.19, TF 2.19; 2.6.x: Python >= 3.12 and numpy 2.2, onnx 1.20,
TF 2.21), none of which qualitas' torch/ONNX environment can take without downgrades, so
conversion and TensorFlow inference run in a **separate Python environment**
(``make tf-env`` builds ``.venv-tf``) through :mod:`qualitas.export.tf_worker`, started as a
subprocess with an argument list. Which interpreter: ``$QUALITAS_TF_PYTHON``, else
``.venv-tf/bin/python`` of the source checkout, else the current interpreter when it has
onnx2tf and TensorFlow itself.

The SavedModel's ``serving_default`` signature has the ONNX graph's contract: inputs named
as the card says (``dist``/``ref`` or ``--io-names``), ``NCHW``/``NTCHW`` float32 in
``[0, 1]``, output ``{card.output.name: (B,) | (B, N)}``.
"""

from __future__ import annotations

import atexit
import importlib.util
import io
import json
import os
import re
import struct
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np
import torch
from torch import nn

from qualitas.errors import DependencyError, UsageError
from qualitas.export.card import ModelCard
from qualitas.export.common import ExportError, axes_of, card_for_shapes, to_numpy

FILE = "saved_model"
"""The SavedModel folder inside the export folder (``saved_model.pb`` + ``variables/``)."""
WORKER = Path(__file__).with_name("tf_worker.py")
TF_ENV_VAR = "QUALITAS_TF_PYTHON"
CONVERT_TIMEOUT_S = 1800


def tf_python() -> str:
    """The Python interpreter that has onnx2tf and TensorFlow (see the module docstring)."""
    env = os.environ.get(TF_ENV_VAR)
    if env:
        if not Path(env).is_file():
            raise DependencyError(f"${TF_ENV_VAR}={env}: no such interpreter")
        return env
    local = Path(__file__).resolve().parents[3] / ".venv-tf" / "bin" / "python"
    if local.is_file():
        return str(local)
    if importlib.util.find_spec("onnx2tf") and importlib.util.find_spec("tensorflow"):
        return sys.executable
    raise DependencyError(
        "--format saved_model needs TensorFlow and onnx2tf in their own environment (their pins "
        "conflict with qualitas' ONNX stack): run `make tf-env`, or set "
        f"${TF_ENV_VAR} to a Python that has them (docs/export.md)"
    )


def tf_available() -> bool:
    """Whether a TensorFlow environment is configured (tests skip without one)."""
    try:
        tf_python()
    except DependencyError:
        return False
    return True


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # TensorFlow gets the thread budget torch (and so ONNX Runtime in qualitas) has.
    env.setdefault("QUALITAS_TF_THREADS", str(torch.get_num_threads()))
    env.pop("PYTHONPATH", None)  # the TF environment must not see qualitas' packages
    return env


def convert_onnx_file(onnx_path: str | Path, inputs: list[str], output: str, folder: str | Path) -> dict:
    """Convert an ONNX file to ``folder/saved_model`` in the TF environment.

    ``inputs``/``output`` are the ONNX graph's names (the card's). Returns the worker's
    report: ``signature`` (``inputs``/``outputs`` name -> shape, ``None`` = dynamic),
    ``tensorflow_version``, ``onnx2tf_version``, ``layout_perms``.
    """
    spec = json.dumps({"inputs": list(inputs), "output": output})
    cmd = [tf_python(), str(WORKER), "convert", str(onnx_path), str(folder), spec]
    try:
        proc = subprocess.run(  # noqa: S603 - an argument list, no shell
            cmd, capture_output=True, text=True, timeout=CONVERT_TIMEOUT_S, env=_env(), check=False
        )
    except subprocess.TimeoutExpired:
        raise ExportError(f"SavedModel conversion took longer than {CONVERT_TIMEOUT_S} s") from None
    marker = "QUALITAS_RESULT "
    result = next(
        (json.loads(line[len(marker) :]) for line in proc.stdout.splitlines() if line.startswith(marker)),
        None,
    )
    if proc.returncode != 0 or result is None:
        raise ExportError(f"SavedModel conversion (onnx2tf) failed: {_last_error(proc.stderr + proc.stdout)}")
    return result


def export_saved_model(
    model: nn.Module,
    card: ModelCard,
    folder: Path,
    example: tuple[torch.Tensor, ...],
    *,
    dynamic: set[str],
    opset: int | None = None,
) -> ModelCard:
    """ONNX export to a temporary file, then onnx2tf in the TF environment -> ``folder/saved_model``."""
    from qualitas.export.onnx import export_onnx

    if dynamic & {"height", "width", "frames"}:
        # Measured with onnx2tf 1.29.24: resizes to a computed size fail (Shape slices, see
        # tf_worker), and a classifier's global mean over dynamic H/W converts over the wrong
        # axes (wrong logits, caught only by --verify): SavedModels get a fixed size.
        any_size = card.input.size_policy.get("mode", "none") == "none"
        fix = "give --input-size H W (the size it will serve)" if any_size else "drop --dynamic"
        raise UsageError(
            "--format saved_model needs a fixed height/width (and clip length): onnx2tf 1.29 fails on "
            f"or mis-converts dynamic ones (docs/export.md); {fix}"
        )
    tf_python()  # fail before exporting when there is no TF environment
    with tempfile.TemporaryDirectory(prefix="qualitas-sm-") as tmp:
        onnx_card = export_onnx(model, card, Path(tmp), example, dynamic=dynamic, opset=opset)
        onnx_file = Path(tmp) / onnx_card.export["file"]
        result = convert_onnx_file(onnx_file, list(card.input.names), card.output.name, folder)
    out_shape = result["signature"]["outputs"].get(card.output.name) or [None]
    if out_shape[0] is not None:
        # Seen with onnx2tf 1.29.24 when the last feature map is 1x1 at the exported size (a
        # stride-32 backbone at 32x32): the converted graph answers batch 1 whatever it gets.
        raise ExportError(
            f"onnx2tf fixed the output batch to {out_shape[0]} (signature output {out_shape}); this "
            "happens when a feature map shrinks to 1x1 at the exported size: export a larger size"
        )
    shape = result["signature"]["inputs"][card.input.names[0]]
    observed = {name for name, ax in axes_of(card).items() if shape[ax] is None}
    return card_for_shapes(onnx_card, observed, example).with_export(
        format="saved_model",
        file=FILE,
        opset=onnx_card.export.get("opset"),
        exporter="torch.onnx.export(dynamo=True) -> onnx2tf -> tf.saved_model.save (NCHW signature)",
        signature="serving_default",
        signature_inputs=result["signature"]["inputs"],
        signature_outputs=result["signature"]["outputs"],
        tensorflow_version=result["tensorflow_version"],
        onnx2tf_version=result["onnx2tf_version"],
    )


class SavedModelRunner:
    """TensorFlow's own runtime on the SavedModel, in a worker process of the TF environment.

    One worker per runner (started on load, stopped at exit); calls are serialised. The
    input and output names are those of the card, which the worker checks against the
    SavedModel's signature.
    """

    format = "saved_model"

    def __init__(self, path: str | Path, card: ModelCard, device: str = "cpu") -> None:
        if str(device).startswith("cuda"):
            raise DependencyError("the SavedModel runner runs TensorFlow on the CPU; use --device cpu")
        self.path = Path(path)
        if not (self.path / "saved_model.pb").is_file():
            raise ExportError(f"{self.path}: not a SavedModel folder (no saved_model.pb)")
        self.names = list(card.input.names)
        self.output = card.output.name
        want_out = card.export.get("signature_outputs")
        if want_out is not None and list(want_out) != [self.output]:
            raise ExportError(
                f"{self.path}: signature outputs {list(want_out)} are not the card's {self.output!r}"
            )
        self._lock = threading.Lock()
        self._proc = subprocess.Popen(
            [tf_python(), str(WORKER), "serve", str(self.path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=_env(),
        )
        ready = self._proc.stdout.read(1)  # type: ignore[union-attr]
        if ready != b"R":
            err = self._proc.stderr.read().decode(errors="replace") if self._proc.stderr else ""  # type: ignore[union-attr]
            self.close()
            raise ExportError(f"{self.path}: TensorFlow cannot load it ({_last_error(err)})")
        threading.Thread(target=self._drain, daemon=True).start()  # keep stderr from filling
        atexit.register(self.close)

    def _drain(self) -> None:
        for _ in iter(self._proc.stderr.readline, b""):  # type: ignore[union-attr]
            pass

    def __call__(self, *inputs: torch.Tensor) -> torch.Tensor:
        buf = io.BytesIO()
        np.savez(buf, **{n: to_numpy(x) for n, x in zip(self.names, inputs)})
        body = buf.getvalue()
        with self._lock:
            if self._proc.poll() is not None:
                raise ExportError(f"{self.path}: the TensorFlow worker has exited")
            stdin, stdout = self._proc.stdin, self._proc.stdout
            assert stdin is not None and stdout is not None  # opened as pipes above
            stdin.write(struct.pack("<Q", len(body)) + body)
            stdin.flush()
            status = stdout.read(1)
            (n,) = struct.unpack("<Q", stdout.read(8))
            data = stdout.read(n)
        if status != b"\0":
            shape = tuple(inputs[0].shape)
            raise ExportError(
                f"TensorFlow refused an input of shape {shape}: {data.decode(errors='replace')}"
            )
        return torch.from_numpy(np.load(io.BytesIO(data), allow_pickle=False).copy())

    def close(self) -> None:
        proc = getattr(self, "_proc", None)
        if proc is not None and proc.poll() is None:
            try:
                proc.stdin.close()  # type: ignore[union-attr]
                proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                proc.kill()

    def __del__(self) -> None:
        self.close()


def load_saved_model(path: str | Path, card: ModelCard, device: str = "cpu") -> SavedModelRunner:
    return SavedModelRunner(path, card, device)


def _last_error(text: str) -> str:
    """The most telling line of the worker's output: the last exception line (``XError: ...``)
    of its traceback, else its last line that is not TensorFlow's/onnx2tf's own logging."""
    lines = [" ".join(_ANSI.sub("", line).split()) for line in text.splitlines() if line.strip()]
    lines = [line for line in lines if not _TF_LOG.match(line)]
    errors = [line for line in lines if _EXC.match(line)]
    return ((errors or lines or ["no output"])[-1])[:300]


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_TF_LOG = re.compile(
    r"^([EWI]\d{4} |\d{4}-\d\d-\d\d |WARNING: All log messages|To enable the following|ERROR: )"
)
_EXC = re.compile(r"^[\w.]*(Error|Exception|Exit): ")
