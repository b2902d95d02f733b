"""A bad-input corpus: real files of every supported kind, then mutated (truncations, bit
flips, header corruption, wrong extensions, a decompression-bomb PNG).

Used by tests/runtime/test_fuzz_inputs.py (a small corpus) and benchmarks/bench_fuzz.py
(a large one). Everything is made here from scikit-image's astronaut photo; no files from
outside the checkout.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

W, H = 64, 48
SEED_KINDS = ("jpg", "png", "webp", "bmp", "tiff", "mp4", "mkv", "yuv")


def _frames(n: int) -> np.ndarray:
    from skimage import data

    img = data.astronaut()
    return np.stack([img[100 + 2 * i : 100 + 2 * i + H, 150 + 3 * i : 150 + 3 * i + W] for i in range(n)])


def _yuv420(rgb: np.ndarray) -> bytes:
    r, g, b = (rgb[..., i].astype(np.float64) for i in range(3))
    y = 16 + 0.257 * r + 0.504 * g + 0.098 * b
    u = 128 - 0.148 * r - 0.291 * g + 0.439 * b
    v = 128 + 0.439 * r - 0.368 * g - 0.071 * b
    u, v = (p.reshape(H // 2, 2, W // 2, 2).mean(axis=(1, 3)) for p in (u, v))
    return b"".join(np.round(p).clip(0, 255).astype(np.uint8).tobytes() for p in (y, u, v))


def make_seeds(folder: Path) -> dict[str, Path]:
    """One valid file per kind (``SEED_KINDS``): images 64x48, videos 6 frames 64x48."""
    from PIL import Image

    from media_helpers import write_video

    folder.mkdir(parents=True, exist_ok=True)
    frames = _frames(6)
    out: dict[str, Path] = {}
    for ext, fmt in (("jpg", "JPEG"), ("png", "PNG"), ("webp", "WEBP"), ("bmp", "BMP"), ("tiff", "TIFF")):
        out[ext] = folder / f"seed.{ext}"
        Image.fromarray(frames[0]).save(out[ext], format=fmt)
    out["mp4"] = write_video(folder / "seed.mp4", frames, faststart=True)
    out["mkv"] = write_video(
        folder / "seed.mkv",
        frames,
        codec="libvpx-vp9",
        options={"crf": "40", "b": "0", "deadline": "realtime"},
    )
    out["yuv"] = folder / "seed.yuv"
    out["yuv"].write_bytes(b"".join(_yuv420(f) for f in frames[:3]))
    return out


def bomb_png(width: int = 100_000, height: int = 100_000) -> bytes:
    """A 100-byte PNG declaring ``width`` x ``height`` RGB pixels (30 GB decoded)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def mutations(data: bytes, rng: np.random.Generator, n_trunc: int, n_flip: int) -> list[tuple[str, bytes]]:
    """Named mutated copies of ``data``: truncations (fixed offsets in the header and at
    fractions of the file, plus random ones), bit flips (1 and 8 random bits, in the first
    64 bytes and anywhere) and header overwrites (zeros, random bytes)."""
    size = len(data)
    offsets = {0, 1, 4, 8, 16, 32, 64, size // 4, size // 2, (3 * size) // 4, size - 1}
    offsets |= {int(x) for x in rng.integers(1, max(2, size), n_trunc)}
    out = [(f"trunc{o}", data[:o]) for o in sorted(o for o in offsets if 0 <= o < size)]
    for k in range(n_flip):
        buf = bytearray(data)
        header = k % 2 == 0
        for _ in range(1 if k % 4 < 2 else 8):
            pos = int(rng.integers(0, min(64, size) if header else size))
            buf[pos] ^= 1 << int(rng.integers(0, 8))
        out.append((f"flip{k}{'h' if header else ''}", bytes(buf)))
    out.append(("zerohead", b"\0" * min(32, size) + data[32:]))
    out.append(("randhead", rng.integers(0, 256, min(32, size), np.uint8).tobytes() + data[32:]))
    return out


def build_corpus(folder: Path, seed: int = 0, n_trunc: int = 4, n_flip: int = 4) -> list[Path]:
    """Seeds, their mutations, wrong extensions and the bomb PNG in ``folder``/corpus."""
    seeds = make_seeds(folder / "seeds")
    corpus = folder / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for kind, path in seeds.items():
        data = path.read_bytes()
        (corpus / f"{kind}_orig.{kind}").write_bytes(data)
        for name, mutated in mutations(data, rng, n_trunc, n_flip):
            p = corpus / f"{kind}_{name}.{kind}"
            p.write_bytes(mutated)
            paths.append(p)
    wrong = {
        "png": "jpg",
        "jpg": "png",
        "mp4": "mkv",
        "mkv": "mp4",
        "webp": "tiff",
        "bmp": "mp4",
        "tiff": "yuv",
    }
    for kind, ext in wrong.items():
        p = corpus / f"{kind}_as.{ext}"
        p.write_bytes(seeds[kind].read_bytes())
        paths.append(p)
    # The MP4 sample entry's codec tag overwritten: the container opens, no decoder exists.
    mp4 = seeds["mp4"].read_bytes()
    tag = mp4.rfind(b"avc1")
    (corpus / "mp4_codectag.mp4").write_bytes(mp4[:tag] + b"zzzz" + mp4[tag + 4 :])
    (corpus / "text_as.png").write_text("this is not an image\n")
    (corpus / "bomb.png").write_bytes(bomb_png())
    (corpus / "empty.mp4").write_bytes(b"")
    return sorted(corpus.iterdir())


def run_corpus(corpus: Path, out: Path, *, timeout: float, metric: str = "brisque", jobs: int = 1) -> dict:
    """Score every file of ``corpus`` with ``qualitas score --timeout`` in a subprocess and
    check the contract; returns counts (``crashed`` must be 0) and the problems found."""
    import json
    import os
    import subprocess
    import sys
    import time

    files = sorted(p for p in corpus.iterdir() if p.is_file())
    cmd = [sys.executable, "-m", "qualitas", "score", str(corpus), "--metric", metric, "--size", f"{W}x{H}"]
    cmd += ["--timeout", str(timeout), "--jobs", str(jobs), "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    t0 = time.monotonic()
    # The whole batch may take at most the per-item limit per file (plus start-up).
    proc = subprocess.run(
        cmd, capture_output=True, text=True, env=env, timeout=60 + timeout * len(files), check=False
    )
    wall = time.monotonic() - t0
    problems = []
    if proc.returncode not in (0, 1):
        problems.append(f"exit status {proc.returncode}")
    if "Traceback" in proc.stderr:
        problems.append("traceback on stderr: " + proc.stderr[-500:])
    rows = [json.loads(line) for line in out.read_text().splitlines()]  # every line parses
    seen = [r["path"] for r in rows]
    listed = {str(p) for p in files if p.suffix.lower() in _MEDIA_SUFFIXES}
    if sorted(seen) != sorted(listed):
        problems.append(f"{len(seen)} lines for {len(listed)} inputs")
    died = [r for r in rows if r["error"] and ("process died" in r["error"] or "timed out" in r["error"])]
    multi = [r for r in rows if r["error"] and "\n" in r["error"]]
    problems += [f"{r['path']}: {r['error']}" for r in died + multi]
    return {
        "tried": len(rows),
        "errors": sum(1 for r in rows if r["error"]),
        "scored": sum(1 for r in rows if not r["error"]),
        "crashed": max(
            len([r for r in died if "process died" in r["error"]]), int("Traceback" in proc.stderr)
        ),
        "timed_out": len([r for r in died if "timed out" in r["error"]]),
        "multi_line": len(multi),
        "wall_s": round(wall, 1),
        "problems": problems,
    }


_MEDIA_SUFFIXES = {".jpg", ".png", ".webp", ".bmp", ".tiff", ".mp4", ".mkv", ".yuv"}
