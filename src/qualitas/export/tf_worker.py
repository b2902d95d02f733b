"""TensorFlow side of ``--format saved_model``: a standalone script that runs in the
TensorFlow environment (``make tf-env`` -> ``.venv-tf``), never imported by qualitas.

onnx2tf pins exact numpy/onnx/onnxruntime/protobuf/tensorflow versions that differ from
the ones qualitas' torch/ONNX stack is tested with, so the converter and the TensorFlow
runtime live in an environment of their own and qualitas talks to this script through a
subprocess (argument list, no shell). It imports only the standard library, numpy, onnx,
onnx2tf and tensorflow — no qualitas, no torch.

    python tf_worker.py convert MODEL.onnx OUT_DIR '{"inputs": [...], "output": "..."}'
        -> OUT_DIR/saved_model/ ; prints one JSON line (signature, versions)
    python tf_worker.py serve OUT_DIR/saved_model
        -> reads requests from stdin, answers on stdout (see ``serve``)

The SavedModel's ``serving_default`` signature takes the same inputs as the ONNX graph —
the card's names, ``NCHW`` (``NTCHW`` for clips) float32 in ``[0, 1]`` — and returns
``{output_name: (B,) | (B, N)}``: onnx2tf's graph is NHWC inside, and a thin wrapper
transposes at the border, so the card describes the SavedModel exactly as it describes the
ONNX file.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import struct
import sys
import tempfile

# Run by path, Python puts this folder first on sys.path, where qualitas' own onnx.py would
# shadow the onnx package.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")  # CPU: the parity reference is CPU too


def prepare_onnx(src: str, dst: str) -> dict:
    """Copy ``src`` to ``dst`` rewritten around three onnx2tf 1.29 conversion bugs, without
    changing what the graph computes:

    - an initializer shared by several nodes (torch dedupes equal constants, e.g. a
      normalisation mean equal to its std) is given one copy per use — onnx2tf transposes
      a shared constant once per consumer;
    - a constant ``(1, C, 1, 1)`` of an elementwise op loses its leading 1s (``(C, 1, 1)``,
      the same under broadcasting) — onnx2tf's layout heuristic otherwise transposes it to
      ``(1, 1, C, 1)`` next to a dynamic-batch input and the conversion fails;
    - a ``Resize`` whose ``sizes`` are computed but whose output height/width are static
      gets constant ``scales`` (:func:`_static_resize_sizes`).

    onnx2tf also rewrites its input file (onnxsim), hence the copy.
    """
    import onnx
    from onnx import numpy_helper

    model = onnx.load(src)
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    uses: dict[str, int] = {}
    changed = 0
    for node in graph.node:
        for k, name in enumerate(node.input):
            if name not in inits:
                continue
            uses[name] = uses.get(name, 0) + 1
            arr = numpy_helper.to_array(inits[name])
            squeeze = node.op_type in ("Add", "Sub", "Mul", "Div") and arr.ndim > 1 and arr.shape[0] == 1
            if uses[name] == 1 and not squeeze:
                continue
            while squeeze and arr.ndim > 1 and arr.shape[0] == 1:
                arr = arr.reshape(arr.shape[1:])
            new = numpy_helper.from_array(arr, f"{name}__use{uses[name]}")
            graph.initializer.append(new)
            node.input[k] = new.name
            changed += 1
    resizes = _static_resize_sizes(model)
    onnx.save(model, dst)
    return {"rewritten_constants": changed, "rewritten_resizes": resizes}


def _static_resize_sizes(model) -> int:
    """Resize nodes whose ``sizes`` input is computed (``Concat(Shape(x)[:2], [h, w])``,
    what torch exports for ``F.interpolate(size=...)`` with a dynamic batch) but whose output
    height/width are static get constant ``scales`` instead: onnx2tf 1.29 cannot take a
    computed ``sizes`` (``'size' must be a 1-D int32 Tensor``) and takes the output size from
    the ONNX output shape when ``scales`` are given, so TensorFlow resizes to exactly the
    same size. Resizes whose output size follows a dynamic input height/width are left as
    they are: their sizes come from ``Shape(x, start, end)`` slices, which onnx2tf 1.29 maps
    bound by bound through its NCHW -> NHWC axis table (``end=4`` is out of range:
    ``IndexError``; ``[0:2]`` becomes ``[0:1]``), so such graphs convert only with a fixed
    height/width."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    inferred = onnx.shape_inference.infer_shapes(model)
    shapes = {}
    for v in [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]:
        dims = v.type.tensor_type.shape.dim
        shapes[v.name] = [d.dim_value if d.HasField("dim_value") else None for d in dims]
    inits = {i.name for i in model.graph.initializer}
    n = 0
    for node in model.graph.node:
        if node.op_type != "Resize" or len(node.input) < 4 or not node.input[3] or node.input[3] in inits:
            continue
        if any(a.name == "axes" for a in node.attribute):
            continue
        src, out = shapes.get(node.input[0]), shapes.get(node.output[0])
        if not src or not out or len(src) != len(out) or any(d is None for d in src[2:] + out[2:]):
            continue
        scales = [1.0, 1.0]
        for o, i in zip(out[2:], src[2:]):
            s = np.float32(o / i)
            # floor(in * scale) must give the size back, in float32 and in float64 (shape
            # inference and runtimes compute it either way): 5/3 rounds below 5/3 in float32.
            while np.floor(np.float32(i) * s) < o or np.floor(float(i) * float(s)) < o:
                s = np.nextafter(s, np.float32(np.inf))
            scales.append(float(s))
        const = numpy_helper.from_array(np.array(scales, np.float32), f"{node.output[0]}__scales")
        model.graph.initializer.append(const)
        x, roi = node.input[0], node.input[1]
        del node.input[:]
        node.input.extend([x, roi, const.name])
        n += 1
    return n


def _block_downloads() -> None:
    """onnx2tf fetches sample images from the internet for fixed-batch image inputs;
    qualitas never downloads at run time, so that helper fails loudly instead."""
    import onnx2tf.onnx2tf as main_mod
    import onnx2tf.utils.common_functions as common

    def refuse(*_a, **_k):
        raise RuntimeError("onnx2tf tried to download sample data (qualitas exports never download)")

    common.download_test_image_data = refuse
    if hasattr(main_mod, "download_test_image_data"):
        main_mod.download_test_image_data = refuse


def convert(onnx_path: str, out_dir: str, spec: dict) -> dict:
    """ONNX -> ``out_dir/saved_model`` with an NCHW signature named like the card."""
    import numpy as np
    import onnx
    import onnx2tf
    import tensorflow as tf

    _block_downloads()
    names = list(spec["inputs"])
    output = str(spec["output"])
    target = os.path.join(out_dir, "saved_model")
    with tempfile.TemporaryDirectory(prefix="qualitas-tf-") as tmp:
        fixed = os.path.join(tmp, "model.onnx")
        info = prepare_onnx(onnx_path, fixed)
        proto = onnx.load(fixed)
        onnx_shapes = {
            i.name: [d.dim_value if d.HasField("dim_value") else None for d in i.type.tensor_type.shape.dim]
            for i in proto.graph.input
        }
        if list(onnx_shapes) != names:
            raise SystemExit(f"ONNX inputs {list(onnx_shapes)} are not the card's {names}")
        raw_dir = os.path.join(tmp, "tf")
        onnx2tf.convert(
            input_onnx_file_path=fixed,
            output_folder_path=raw_dir,
            output_signaturedefs=True,
            non_verbose=True,
        )
        inner = tf.saved_model.load(raw_dir)
        fn = inner.signatures["serving_default"]
        tf_inputs = fn.structured_input_signature[1]
        perms = {}
        for name in names:
            key = _signature_key(tf_inputs, name)
            tf_shape = list(tf_inputs[key].shape)
            perms[name] = (key, _layout_perm(onnx_shapes[name], tf_shape))
        out_keys = list(fn.structured_outputs)
        if len(out_keys) != 1:
            raise SystemExit(f"the converted graph has {len(out_keys)} outputs {out_keys}; expected one")
        # Dense outputs (e.g. (B, C, H, W) maps) come out channels-last too: back to the ONNX layout.
        onnx_out = [
            d.dim_value if d.HasField("dim_value") else None
            for d in proto.graph.output[0].type.tensor_type.shape.dim
        ]
        tf_out = list(fn.structured_outputs[out_keys[0]].shape)
        candidates = _output_perms(onnx_out, tf_out)
        if len(candidates) > 1:  # e.g. a square (B, g, g) grid: the shapes cannot tell
            candidates = [_closest_to_onnx(onnx_path, fn, perms, onnx_shapes, out_keys[0], candidates)]
        out_perm = candidates[0]
        back = [out_perm.index(i) for i in range(len(out_perm))] if out_perm else None
        specs = [tf.TensorSpec([d for d in onnx_shapes[n]], tf.float32, name=n) for n in names]

        class Serving(tf.Module):
            def __init__(self, inner_model):
                super().__init__()
                self.inner = inner_model  # tracked: its variables are saved with the wrapper

            def call(self, *xs):
                feeds = {}
                for n, x in zip(names, xs):
                    key, perm = perms[n]
                    feeds[key] = tf.transpose(x, perm) if perm else x
                y = self.inner.signatures["serving_default"](**feeds)[out_keys[0]]
                return {output: tf.transpose(y, back) if back else y}

        module = Serving(inner)
        if len(names) == 1:
            serve = tf.function(lambda a: module.call(a), input_signature=specs)
        else:
            serve = tf.function(lambda a, b: module.call(a, b), input_signature=specs)
        if os.path.exists(target):
            shutil.rmtree(target)
        tf.saved_model.save(module, target, signatures={"serving_default": serve.get_concrete_function()})
    loaded = tf.saved_model.load(target).signatures["serving_default"]
    sig_in = loaded.structured_input_signature[1]
    sig_out = loaded.structured_outputs
    return {
        **info,
        "signature": {
            "inputs": {k: [None if d is None else int(d) for d in v.shape] for k, v in sig_in.items()},
            "outputs": {k: [None if d is None else int(d) for d in v.shape] for k, v in sig_out.items()},
        },
        "layout_perms": {n: p for n, (_, p) in perms.items()},
        "output_perm": back,
        "tensorflow_version": tf.__version__,
        "onnx2tf_version": getattr(onnx2tf, "__version__", "?"),
        "numpy_version": np.__version__,
    }


def _signature_key(tf_inputs: dict, name: str) -> str:
    if name in tf_inputs:
        return name
    for key in tf_inputs:  # onnx2tf lower-cases / sanitises some names
        if key.lower().replace(":", "_") == name.lower().replace(":", "_"):
            return key
    raise SystemExit(f"converted signature has inputs {list(tf_inputs)}, none is {name!r}")


def _output_perms(onnx_shape: list, tf_shape: list) -> list[list[int] | None]:
    """Layouts the converted output may have (``None``: as in ONNX, else the channels-last
    permutation), by shape; more than one when equal dimensions make it ambiguous."""
    rank = len(onnx_shape)
    if len(tf_shape) != rank:
        raise SystemExit(f"converted output rank {len(tf_shape)} is not the ONNX rank {rank}")
    if rank < 3:
        return [None]
    perm = [0, *range(2, rank), 1]

    def fits(order):
        return all(a is None or b is None or a == b for a, b in zip([onnx_shape[i] for i in order], tf_shape))

    out = ([None] if fits(list(range(rank))) else []) + ([perm] if fits(perm) else [])
    if not out:
        raise SystemExit(f"cannot relate converted output shape {tf_shape} to ONNX shape {onnx_shape}")
    return out


def _closest_to_onnx(onnx_path, fn, perms, onnx_shapes, out_key, candidates):
    """The candidate output layout under which TensorFlow's output on a random input is
    closest to ONNX Runtime's on the original ONNX file (onnxruntime is one of onnx2tf's
    pinned dependencies, so it is in this environment)."""
    import numpy as np
    import onnxruntime as ort
    import tensorflow as tf

    rng = np.random.default_rng(0)
    feeds = {
        n: rng.random([d if d is not None else (1 if k == 0 else 64) for k, d in enumerate(shape)]).astype(
            np.float32
        )
        for n, shape in onnx_shapes.items()
    }
    want = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    tf_feeds = {
        key: tf.constant(np.transpose(feeds[n], perm) if perm else feeds[n])
        for n, (key, perm) in perms.items()
    }
    got = fn(**tf_feeds)[out_key].numpy()
    errors = []
    for perm in candidates:
        y = np.transpose(got, [perm.index(i) for i in range(len(perm))]) if perm else got
        errors.append(float(np.abs(y - want).max()) if y.shape == want.shape else float("inf"))
    return candidates[int(np.argmin(errors))]


def _layout_perm(onnx_shape: list, tf_shape: list) -> list[int] | None:
    """``None`` when onnx2tf kept the layout, else the channels-last permutation it used
    (``[0, 2, 3, 1]`` for 4-D, ``[0, 2, 3, 4, 1]`` for 5-D), checked against the shapes."""
    rank = len(onnx_shape)
    perm = [0, *range(2, rank), 1]

    def fits(order):
        return all(a is None or b is None or a == b for a, b in zip([onnx_shape[i] for i in order], tf_shape))

    if len(tf_shape) != rank:
        raise SystemExit(f"converted input rank {len(tf_shape)} is not the ONNX rank {rank}")
    if fits(list(range(rank))) and not fits(perm):
        return None
    if fits(perm):
        return perm
    raise SystemExit(f"cannot relate converted input shape {tf_shape} to ONNX shape {onnx_shape}")


def serve(saved_model: str) -> None:
    """Answer requests on stdin/stdout until stdin closes.

    Request: 8-byte little-endian length + an ``.npz`` with one array per input name.
    Answer: 1 status byte (0 ok, 1 error) + 8-byte length + an ``.npz`` holding ``out``
    (ok) or UTF-8 error text.
    """
    import numpy as np
    import tensorflow as tf

    threads = int(os.environ.get("QUALITAS_TF_THREADS", "0") or 0)
    if threads > 0:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    fn = tf.saved_model.load(saved_model).signatures["serving_default"]
    (out_key,) = list(fn.structured_outputs)
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    stdout.write(b"R")  # ready
    stdout.flush()
    while True:
        head = stdin.read(8)
        if len(head) < 8:
            return
        (n,) = struct.unpack("<Q", head)
        data = np.load(io.BytesIO(stdin.read(n)))
        try:
            feeds = {k: tf.constant(data[k]) for k in data.files}
            y = fn(**feeds)[out_key].numpy()
            buf = io.BytesIO()
            np.save(buf, y, allow_pickle=False)
            status, body = b"\0", buf.getvalue()
        except Exception as err:  # noqa: BLE001 - reported back to qualitas as one line
            status, body = b"\1", (" ".join(str(err).split()) or type(err).__name__)[:500].encode()
        stdout.write(status + struct.pack("<Q", len(body)) + body)
        stdout.flush()


def time_calls(saved_model: str, inputs_npz: str, seconds: float) -> dict:
    """Benchmarks: TensorFlow's own throughput on the SavedModel, inside this process (no
    pipe), with ``QUALITAS_TF_THREADS`` intra-op threads; best of 3 timed blocks."""
    import time

    import numpy as np
    import tensorflow as tf

    threads = int(os.environ.get("QUALITAS_TF_THREADS", "0") or 0)
    if threads > 0:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    fn = tf.saved_model.load(saved_model).signatures["serving_default"]
    data = np.load(inputs_npz)
    feeds = {k: tf.constant(data[k]) for k in data.files}
    fn(**feeds)  # warm-up (graph tracing, allocations)
    best = 0.0
    for _ in range(3):
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds or n < 2:
            fn(**feeds)
            n += 1
        best = max(best, n / (time.perf_counter() - t0))
    return {"calls_per_s": best}


def main(argv: list[str]) -> int:
    if len(argv) >= 4 and argv[0] == "convert":
        result = convert(argv[1], argv[2], json.loads(argv[3]))
        print("QUALITAS_RESULT " + json.dumps(result), flush=True)
        return 0
    if len(argv) == 2 and argv[0] == "serve":
        serve(argv[1])
        return 0
    if len(argv) == 4 and argv[0] == "time":
        print("QUALITAS_RESULT " + json.dumps(time_calls(argv[1], argv[2], float(argv[3]))), flush=True)
        return 0
    if argv == ["versions"]:
        import onnx2tf
        import tensorflow as tf

        print(json.dumps({"tensorflow": tf.__version__, "onnx2tf": getattr(onnx2tf, "__version__", "?")}))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
