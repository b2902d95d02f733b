"""Convert the UpscalerJS RDN super-resolution models (TF.js files) to qualitas' :class:`RDN`.

::

    npm pack @upscalerjs/esrgan-slim@1.0.0 && tar xzf upscalerjs-esrgan-slim-1.0.0.tgz
    python -m qualitas.models.convert_upscalerjs package/ --out src/qualitas/weights/rdn

For each ``models/x{S}/model.json`` (``--scales``, default 2,3,4) of the unpacked npm
package: read the topology and the float32 shard (:mod:`qualitas.io.tfjs`), check the
graph layer by layer against :class:`qualitas.models.rdn.RDN` and read its arguments
(:func:`~qualitas.models.rdn.rdn_arguments`), transpose the kernels HWIO -> OIHW, load them
into the module (strict), then upscale the package's own ``assets/fixture.png`` and compare
with its ``assets/samples/{S}x/result.png`` (both 8-bit; the converted net must reproduce
it to within 1 grey level, with at most 0.1% of the values 1 level off: rounding of values
at .5). Writes ``rdn_<variant>_x<S>.pt`` (a plain state dict: ``torch.load(...,
weights_only=True)``) and records arguments, provenance (package, version, files, sha256)
and the sample check in ``rdn.json`` in ``--out``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
from pathlib import Path

import torch

from qualitas.errors import MediaError, QualitasError, UsageError
from qualitas.models.rdn import RDN, RDNArguments, keras_state_dict, rdn_arguments

MANIFEST = "rdn.json"
SAMPLE_MAX_ABS = 1.0
"""Sample check: largest allowed 8-bit difference to the package's own result image."""
SAMPLE_MAX_SHARE = 1e-3
"""Sample check: largest allowed share of output values that differ at all."""


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def convert_model(model_json: str | Path) -> tuple[RDN, RDNArguments]:
    """A TF.js RDN ``model.json`` (shards next to it) -> the loaded :class:`RDN` (eval mode)."""
    from qualitas.io.tfjs import read_layers_model

    model = read_layers_model(model_json)
    args = rdn_arguments(model.layers)
    net = RDN.from_arguments(args)
    net.load_state_dict(keras_state_dict(model.weights, args), strict=True)
    return net.eval(), args


def upscale_u8(net: RDN, image: torch.Tensor) -> torch.Tensor:
    """``(3, h, w)`` in [0, 1] -> the net's 8-bit output ``(3, s*h, s*w)`` as float 0..255
    (clamped and rounded, as UpscalerJS writes a PNG)."""
    with torch.no_grad():
        return net((image * 255).round()[None])[0].clamp(0, 255).round()


def check_samples(net: RDN, package: Path, scale: int) -> dict | None:
    """Compare the net's output on the package's ``assets/fixture.png`` with its
    ``assets/samples/{scale}x/result.png``; ``None`` when the package has no such files."""
    from qualitas.io.image import read_image

    fixture, result = (
        package / "assets" / "fixture.png",
        package / "assets" / "samples" / f"{scale}x" / "result.png",
    )
    if not fixture.is_file() or not result.is_file():
        return None
    ref = (read_image(result).data * 255).round()
    out = upscale_u8(net, read_image(fixture).data)
    if out.shape != ref.shape:
        raise MediaError(f"{result}: {tuple(ref.shape)}, the converted net gives {tuple(out.shape)}")
    diff = (out - ref).abs()
    return {
        "fixture": "assets/fixture.png",
        "result": f"assets/samples/{scale}x/result.png",
        "max_abs_diff": float(diff.max()),
        "mean_abs_diff": float(diff.mean()),
        "share_differing": float((diff > 0).float().mean()),
        "tolerance": {"max_abs_diff": SAMPLE_MAX_ABS, "share_differing": SAMPLE_MAX_SHARE},
    }


def _atomic_save(obj: dict, path: Path) -> None:
    """``torch.save`` through memory (the zip's inner folder name is then fixed, not the
    temporary file's: the same weights give the same bytes), written atomically."""
    import io

    from qualitas.files import temp_for

    buf = io.BytesIO()
    torch.save(obj, buf)
    tmp = temp_for(path)
    try:
        Path(tmp).write_bytes(buf.getvalue())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def convert_package(
    package: str | Path, out: str | Path, *, scales: tuple[int, ...] = (2, 3, 4), variant: str | None = None
) -> list[dict]:
    """Convert the ``models/x{S}`` of an unpacked UpscalerJS package into ``out``.

    Returns the manifest entries written (also merged into ``out/rdn.json``). Raises
    ``MediaError`` when a converted model does not reproduce the package's sample output.
    """
    from qualitas.data.manifest import atomic_write_text

    pkg = Path(package)
    meta_path = pkg / "package.json"
    if not meta_path.is_file():
        raise UsageError(f"{pkg}: no package.json (pass the unpacked npm package folder)")
    meta = json.loads(meta_path.read_text())
    name, version = str(meta.get("name", "")), str(meta.get("version", ""))
    variant = variant or name.rsplit("/", 1)[-1].removeprefix("esrgan-")
    licence_file = next(
        (p for p in (pkg / "LICENSE", pkg / "license", pkg / "LICENSE.md") if p.is_file()), None
    )
    dest = Path(out)
    dest.mkdir(parents=True, exist_ok=True)
    entries = []
    for s in scales:
        mj = pkg / "models" / f"x{s}" / "model.json"
        if not mj.is_file():
            raise UsageError(f"{pkg}: no models/x{s}/model.json")
        net, args = convert_model(mj)
        if args.scale != s:
            raise MediaError(f"{mj}: topology upsamples by {args.scale}, not {s}")
        check = check_samples(net, pkg, s)
        if check is not None and (
            check["max_abs_diff"] > SAMPLE_MAX_ABS or check["share_differing"] > SAMPLE_MAX_SHARE
        ):
            raise MediaError(
                f"{mj}: converted net differs from {check['result']} (max {check['max_abs_diff']:g} grey levels, "
                f"{100 * check['share_differing']:.3f}% of values)"
            )
        file = f"rdn_{variant}_x{s}.pt"
        _atomic_save(net.state_dict(), dest / file)
        doc = json.loads(mj.read_text())
        entries.append(
            {
                "file": file,
                "sha256": sha256(dest / file),
                "variant": variant,
                "scale": s,
                "arguments": args.to_dict(),
                "parameters": sum(p.numel() for p in net.parameters()),
                "source": {
                    "package": name,
                    "version": version,
                    "licence": meta.get("license"),
                    "licence_file": licence_file.name if licence_file else None,
                    "files": {
                        rel: sha256(pkg / "models" / f"x{s}" / rel)
                        for rel in ["model.json", *(p for g in doc["weightsManifest"] for p in g["paths"])]
                    },
                    "converted_by": doc.get("convertedBy"),
                },
                "input_range": [0, 255],
                "output_range": [0, 255],
                "sample_check": check,
            }
        )
    manifest_path = dest / MANIFEST
    old = json.loads(manifest_path.read_text())["models"] if manifest_path.is_file() else []
    keep = [e for e in old if e["file"] not in {n["file"] for n in entries}]
    models = sorted(keep + entries, key=lambda e: (e["variant"], e["scale"]))
    atomic_write_text(manifest_path, json.dumps({"models": models}, indent=1) + "\n")
    return entries


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m qualitas.models.convert_upscalerjs",
        description="Convert UpscalerJS RDN models (unpacked npm package: models/x{S}/model.json + shard) "
        "to qualitas RDN state dicts, checked against the package's own sample outputs.",
    )
    ap.add_argument("packages", nargs="+", help="unpacked npm package folders (with package.json, models/)")
    ap.add_argument("--out", required=True, help="folder for rdn_<variant>_x<S>.pt and rdn.json")
    ap.add_argument("--scales", default="2,3,4", help="comma-separated scales to convert (default 2,3,4)")
    ap.add_argument("--variant", default=None, help="name in the files (default: from the package name)")
    args = ap.parse_args(argv)
    try:
        scales = tuple(int(v) for v in args.scales.split(","))
        for pkg in args.packages:
            for e in convert_package(pkg, args.out, scales=scales, variant=args.variant):
                c = e["sample_check"]
                check = (
                    "no sample in the package"
                    if c is None
                    else f"sample max diff {c['max_abs_diff']:g}, {100 * c['share_differing']:.4f}% values differ"
                )
                print(f"{e['file']}: {e['parameters']} parameters, {check}")
    except (QualitasError, ValueError) as err:
        print(f"error: {err}")
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
