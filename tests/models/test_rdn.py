"""RDN port and the UpscalerJS (TF.js layers) converter.

The fixtures are tiny TF.js models this test writes itself: a Keras functional topology in
the UpscalerJS layer naming, random weights in a float32 shard (in the alphabetical order
the real packages use), and a numpy reference forward pass that interprets the topology
layer by layer (NHWC, HWIO kernels, 'same' padding, TF's depth_to_space order), written
independently of the torch module.
"""

from __future__ import annotations

import hashlib
import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from qualitas.errors import MediaError, UsageError
from qualitas.io.tfjs import read_layers_model, read_weights
from qualitas.models.convert_upscalerjs import convert_model, main
from qualitas.models.rdn import RDN, load_rdn, rdn_arguments, shipped_weights_dir

# ----------------------------------------------------------------- fixture writer


def _conv(name, inp, filters, k, padding="same"):
    cfg = {
        "name": name,
        "filters": filters,
        "kernel_size": [k, k],
        "strides": [1, 1],
        "padding": padding,
        "data_format": "channels_last",
        "dilation_rate": [1, 1],
        "activation": "linear",
        "use_bias": True,
    }
    return {"class_name": "Conv2D", "name": name, "config": cfg, "inbound_nodes": [[[inp, 0, 0, {}]]]}


def _layer(cls, name, inputs, **cfg):
    return {
        "class_name": cls,
        "name": name,
        "config": {"name": name, **cfg},
        "inbound_nodes": [[[i, 0, 0, {}] for i in inputs]],
    }


def topology(*, scale=2, blocks=2, layers=2, growth=3, features=5, up=(6, 4), shuffle=False):
    """A Keras RDN config as the UpscalerJS files spell it."""
    L = [
        {
            "class_name": "InputLayer",
            "name": "LR",
            "config": {"batch_input_shape": [None, None, None, 3], "name": "LR"},
            "inbound_nodes": [],
        },
        _conv("F_m1", "LR", features, 3),
        _conv("F_0", "F_m1", features, 3),
    ]
    prev = "F_0"
    for d in range(1, blocks + 1):
        src = prev
        for c in range(1, layers + 1):
            L.append(_conv(f"F_{d}_{c}", src, growth, 3))
            L.append(_layer("Activation", f"F_{d}_{c}_Relu", [f"F_{d}_{c}"], activation="relu"))
            L.append(_layer("Concatenate", f"RDB_Concat_{d}_{c}", [src, f"F_{d}_{c}_Relu"], axis=3))
            src = f"RDB_Concat_{d}_{c}"
        L.append(_conv(f"LFF_{d}", src, features, 1, padding="valid"))
        L.append(_layer("Add", f"LRL_{d}", [f"LFF_{d}", prev]))
        prev = f"LRL_{d}"
    L.append(_layer("Concatenate", "LRLs_Concat", [f"LRL_{d}" for d in range(1, blocks + 1)], axis=3))
    L += [_conv("GFF_1", "LRLs_Concat", features, 1), _conv("GFF_2", "GFF_1", features, 3)]
    L.append(_layer("Add", "FDF", ["GFF_2", "F_m1"]))
    L.append(_conv("UPN1", "FDF", up[0], 5))
    L.append(_layer("Activation", "UPN1_Relu", ["UPN1"], activation="relu"))
    L.append(_conv("UPN2", "UPN1_Relu", up[1], 3))
    L.append(_layer("Activation", "UPN2_Relu", ["UPN2"], activation="relu"))
    L.append(_conv("UPN3", "UPN2_Relu", 3 * scale * scale, 3))
    if shuffle:
        L.append(_layer(f"PixelShuffle{scale}x", "PixelShuffle", ["UPN3"]))
        L.append(_conv("SR", "PixelShuffle", 3, 3))
    else:
        L.append(_layer("UpSampling2D", "UPsample", ["UPN3"], size=[scale, scale], interpolation="nearest"))
        L.append(_conv("SR", "UPsample", 3, 3))
    return L


def write_model(folder, layers, seed=0, quantise=None):
    """model.json + one float32 shard; returns the Keras weights written (by name)."""
    rng = np.random.default_rng(seed)
    shapes = {}
    channels = {"LR": 3}
    for layer in layers:
        c, ins = layer["config"], [n[0] for n in (layer["inbound_nodes"] or [[]])[0]]
        if layer["class_name"] == "Conv2D":
            k = c["kernel_size"][0]
            shapes[f"{layer['name']}/kernel"] = (k, k, channels[ins[0]], c["filters"])
            shapes[f"{layer['name']}/bias"] = (c["filters"],)
            channels[layer["name"]] = c["filters"]
        elif layer["class_name"] == "Concatenate":
            channels[layer["name"]] = sum(channels[i] for i in ins)
        elif layer["class_name"].startswith("PixelShuffle"):
            channels[layer["name"]] = channels[ins[0]] // int(layer["class_name"][12:-1]) ** 2
        elif ins:
            channels[layer["name"]] = channels[ins[0]]
    weights, manifest, blobs = {}, [], []
    for name in sorted(shapes):  # the packages store weights alphabetically, not in graph order
        fan_in = math.prod(shapes[name][:-1]) if name.endswith("kernel") else 10
        w = (rng.standard_normal(shapes[name]) / math.sqrt(fan_in)).astype(np.float32)
        entry = {"name": name, "shape": list(shapes[name]), "dtype": "float32"}
        if quantise == "uint8" and name == "SR/bias":
            lo, hi = float(w.min()), float(w.max())
            scale = (hi - lo) / 255 or 1.0
            q = np.round((w - lo) / scale).astype(np.uint8)
            w = (q.astype(np.float32) * np.float32(scale) + np.float32(lo)).astype(np.float32)
            entry["quantization"] = {"dtype": "uint8", "scale": scale, "min": lo}
            blobs.append(q.tobytes())
        else:
            blobs.append(w.astype("<f4").tobytes())
        weights[name] = w
        manifest.append(entry)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "group1-shard1of1.bin").write_bytes(b"".join(blobs))
    doc = {
        "format": "layers-model",
        "generatedBy": "keras v2.10.0",
        "convertedBy": "test",
        "modelTopology": {
            "model_config": {
                "class_name": "Functional",
                "config": {"layers": layers, "input_layers": [["LR", 0, 0]], "output_layers": [["SR", 0, 0]]},
            }
        },
        "weightsManifest": [{"paths": ["group1-shard1of1.bin"], "weights": manifest}],
    }
    (folder / "model.json").write_text(json.dumps(doc))
    return weights


# ----------------------------------------------------------------- numpy reference


def np_conv_same(x, kernel, bias):
    """NHWC conv, stride 1, 'same' zero padding (odd kernels): explicit sum over taps."""
    k = kernel.shape[0]
    r = k // 2
    xp = np.pad(x, ((0, 0), (r, r), (r, r), (0, 0)))
    h, w = x.shape[1:3]
    out = np.zeros((x.shape[0], h, w, kernel.shape[3]), np.float64) + bias
    for dy in range(k):
        for dx in range(k):
            out += np.einsum("bhwi,io->bhwo", xp[:, dy : dy + h, dx : dx + w, :], kernel[dy, dx])
    return out


def np_depth_to_space(x, s):
    """TF depth_to_space, NHWC: out[b, h*s+dy, w*s+dx, c] = x[b, h, w, (dy*s+dx)*C + c]."""
    b, h, w, cs = x.shape
    c = cs // (s * s)
    return x.reshape(b, h, w, s, s, c).transpose(0, 1, 3, 2, 4, 5).reshape(b, h * s, w * s, c)


def np_forward(layers, weights, x):
    """Interpret the Keras topology on ``x (B, H, W, 3)``."""
    t = {}
    for layer in layers:
        name, cls = layer["name"], layer["class_name"]
        ins = [t[n[0]] for n in (layer["inbound_nodes"] or [[]])[0]]
        if cls == "InputLayer":
            t[name] = x.astype(np.float64)
        elif cls == "Conv2D":
            t[name] = np_conv_same(ins[0], weights[f"{name}/kernel"], weights[f"{name}/bias"])
        elif cls == "Activation":
            t[name] = np.maximum(ins[0], 0)
        elif cls == "Concatenate":
            t[name] = np.concatenate(ins, axis=-1)
        elif cls == "Add":
            t[name] = ins[0] + ins[1]
        elif cls == "UpSampling2D":
            s = layer["config"]["size"][0]
            t[name] = ins[0].repeat(s, axis=1).repeat(s, axis=2)
        elif cls.startswith("PixelShuffle"):
            t[name] = np_depth_to_space(ins[0], int(cls[12:-1]))
        else:
            raise AssertionError(cls)
    return t["SR"]


# ----------------------------------------------------------------- tests


@pytest.mark.parametrize(
    "kw",
    [
        dict(scale=2, blocks=2, layers=2, growth=3, features=5),
        dict(scale=3, blocks=1, layers=1, growth=4, features=4, shuffle=True),
    ],
)
def test_converter_matches_numpy_reference(tmp_path, kw):
    layers = topology(**kw)
    weights = write_model(tmp_path, layers)
    net, args = convert_model(tmp_path / "model.json")
    assert (args.scale, args.blocks, args.layers, args.growth, args.features) == (
        kw["scale"],
        kw["blocks"],
        kw["layers"],
        kw["growth"],
        kw["features"],
    )
    assert args.upsample == ("shuffle" if kw.get("shuffle") else "nearest")
    # HWIO -> OIHW, element by element.
    k = weights["F_m1/kernel"]
    w = net.sfe1.weight.detach().numpy()
    assert w.shape == (k.shape[3], k.shape[2], k.shape[0], k.shape[1])
    for o, i, y, x in [(0, 0, 0, 0), (1, 2, 0, 2), (3, 1, 2, 1)]:
        assert w[o, i, y, x] == k[y, x, i, o]
    img = np.random.default_rng(1).uniform(0, 255, (1, 7, 9, 3))
    ref = np_forward(layers, weights, img)
    with torch.no_grad():
        out = net(torch.from_numpy(img).float().permute(0, 3, 1, 2)).permute(0, 2, 3, 1).numpy()
    assert out.shape == (1, 7 * kw["scale"], 9 * kw["scale"], 3)
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-3 * np.abs(ref).max())


def test_dequantised_weights_and_truncated_shard(tmp_path):
    layers = topology()
    weights = write_model(tmp_path, layers, quantise="uint8")
    model = read_layers_model(tmp_path / "model.json")
    np.testing.assert_allclose(model.weights["SR/bias"], weights["SR/bias"], rtol=1e-6, atol=1e-7)
    doc = json.loads((tmp_path / "model.json").read_text())
    shard = tmp_path / "group1-shard1of1.bin"
    shard.write_bytes(shard.read_bytes()[:-8])
    with pytest.raises(MediaError, match="truncated"):
        read_weights(doc["weightsManifest"], tmp_path)


def test_topology_mismatch_is_one_line_error(tmp_path):
    layers = topology()
    relu = next(lay for lay in layers if lay["name"] == "F_2_1_Relu")
    relu["config"]["activation"] = "tanh"
    with pytest.raises(MediaError, match="F_2_1_Relu.*tanh") as err:
        rdn_arguments(read_layers_model_from(tmp_path, layers).layers)
    assert "\n" not in str(err.value)
    layers = topology()
    skip = next(lay for lay in layers if lay["name"] == "LRL_1")
    skip["inbound_nodes"][0][1][0] = "F_m1"  # residual from the wrong tensor
    with pytest.raises(MediaError, match="LRL_1"):
        rdn_arguments(read_layers_model_from(tmp_path, layers).layers)


def read_layers_model_from(folder, layers):
    write_model(folder, layers)
    return read_layers_model(folder / "model.json")


def test_convert_package_cli_and_sample_check(tmp_path, capsys):
    pkg = tmp_path / "package"
    layers = topology(scale=2)
    weights = write_model(pkg / "models" / "x2", layers)
    (pkg / "package.json").write_text(json.dumps({"name": "@upscalerjs/esrgan-tiny", "version": "9.9.9"}))
    (pkg / "LICENSE").write_text("MIT\n")
    fixture = np.random.default_rng(2).integers(0, 256, (6, 8, 3), dtype=np.uint8)
    (pkg / "assets" / "samples" / "2x").mkdir(parents=True)
    Image.fromarray(fixture).save(pkg / "assets" / "fixture.png")
    ref = np_forward(layers, weights, fixture[None].astype(np.float64))[0]
    result = pkg / "assets" / "samples" / "2x" / "result.png"
    Image.fromarray(np.clip(np.round(ref), 0, 255).astype(np.uint8)).save(result)
    out = tmp_path / "out"
    assert main([str(pkg), "--out", str(out), "--scales", "2"]) == 0
    entry = json.loads((out / "rdn.json").read_text())["models"][0]
    assert entry["file"] == "rdn_tiny_x2.pt" and entry["source"]["version"] == "9.9.9"
    assert entry["sample_check"]["max_abs_diff"] <= 1.0
    assert entry["sha256"] == hashlib.sha256((out / "rdn_tiny_x2.pt").read_bytes()).hexdigest()
    net = load_rdn(scale=2, variant="tiny", folder=out)
    with torch.no_grad():
        y = net(torch.from_numpy(fixture).float().permute(2, 0, 1)[None])[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(y, ref, atol=1e-3 * np.abs(ref).max())
    # A package whose sample output the converted net does not reproduce is refused.
    bad = np.clip(np.round(ref) + 3, 0, 255).astype(np.uint8)
    Image.fromarray(bad).save(result)
    capsys.readouterr()
    assert main([str(pkg), "--out", str(tmp_path / "out2"), "--scales", "2"]) == 2
    msg = capsys.readouterr().out.strip()
    assert msg.startswith("error:") and "differs from" in msg and "\n" not in msg


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(-10 * torch.log10(((a - b) ** 2).mean()))


def test_shipped_weights_load_safely_and_beat_bicubic():
    from qualitas.importance.enhancers import bicubic_down, bicubic_up

    d = shipped_weights_dir()
    entries = json.loads((d / "rdn.json").read_text())["models"]
    assert {(e["variant"], e["scale"]) for e in entries} == {
        (v, s) for v in ("slim", "medium") for s in (2, 3, 4)
    }
    for e in entries:
        assert hashlib.sha256((d / e["file"]).read_bytes()).hexdigest() == e["sha256"]
        sd = torch.load(d / e["file"], map_location="cpu", weights_only=True)
        assert all(isinstance(v, torch.Tensor) and v.dtype == torch.float32 for v in sd.values())
        assert e["sample_check"]["max_abs_diff"] <= 1.0  # reproduced the package's own sample
    # Generated piecewise-constant grey rectangles (sharp edges: the content SR is for): x3
    # RDN beats bicubic (slim by 0.7 dB, medium by 0.9). On smooth gradients bicubic is
    # near-exact and these GAN-trained nets lose (docs/importance.md).
    g = torch.Generator().manual_seed(0)
    im = torch.full((96, 96), 0.5)
    for _ in range(14):
        y0, x0 = torch.randint(0, 80, (2,), generator=g).tolist()
        h, w = torch.randint(8, 30, (2,), generator=g).tolist()
        im[y0 : y0 + h, x0 : x0 + w] = torch.rand(1, generator=g).item()
    hr = im.expand(3, -1, -1)[None]
    lr = bicubic_down(hr, 3)
    base = _psnr(bicubic_up(lr, 3), hr)
    for variant in ("slim", "medium"):
        net = load_rdn(scale=3, variant=variant)
        assert isinstance(net, RDN) and net.scale == 3
        with torch.no_grad():
            sr = (net(lr * 255) / 255).clamp(0, 1)
        assert _psnr(sr, hr) > base + 0.4, variant


def test_missing_weights_one_line(tmp_path):
    with pytest.raises(
        UsageError, match=r"no RDN weights for variant=medium scale=8 \(available: medium x2/x3/x4"
    ):
        load_rdn(scale=8)
    with pytest.raises(UsageError, match="no rdn.json"):
        load_rdn(scale=3, folder=tmp_path)
