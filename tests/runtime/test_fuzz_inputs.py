"""Fuzzed bad inputs: every supported kind, mutated; no crash, no hang, one line each, batch done.

The corpus (tests/fuzz_helpers.py) holds ~150 files: JPEG, PNG, WebP, BMP, TIFF, MP4/H.264,
MKV/VP9 and raw YUV seeds, each truncated at header and random offsets, bit-flipped in its
header and anywhere, header-overwritten; seeds under wrong extensions; a text file named
.png; an empty .mp4; a PNG declaring 100000x100000 pixels. A larger run with counts:
benchmarks/bench_fuzz.py (docs/benchmarks.md).
"""

from __future__ import annotations

import json

from fuzz_helpers import build_corpus, run_corpus


def test_fuzzed_corpus_is_scored_without_crash_or_hang(tmp_path):
    files = build_corpus(tmp_path, seed=13, n_trunc=2, n_flip=2)
    assert len(files) > 120
    out = tmp_path / "r.jsonl"
    stats = run_corpus(tmp_path / "corpus", out, timeout=60)
    assert stats["problems"] == [] and stats["crashed"] == 0 and stats["timed_out"] == 0
    assert stats["tried"] == len(files) and stats["multi_line"] == 0
    rows = {r["path"].rsplit("/", 1)[1]: r for r in map(json.loads, out.read_text().splitlines())}
    # The seeds themselves are scored; the unreadable ones fail with a reason, not a crash.
    for kind in ("jpg", "png", "webp", "bmp", "tiff", "mp4", "mkv", "yuv"):
        assert rows[f"{kind}_orig.{kind}"]["error"] is None, kind
    assert "exceeds limit" in rows["bomb.png"]["error"]
    assert "no decoder for its video stream" in rows["mp4_codectag.mp4"]["error"]  # was an AttributeError
    assert rows["empty.mp4"]["error"].endswith("empty file (0 bytes)")
    for name, r in rows.items():
        if r["error"]:
            assert r["scores"] == {} and r["error"].count(r["path"]) <= 1, name
