"""Fuzz `qualitas score` with a large bad-input corpus and report tried / crashed counts.

Builds the corpus of tests/fuzz_helpers.py (JPEG, PNG, WebP, BMP, TIFF, MP4/H.264, MKV/VP9,
raw YUV seeds; truncations at header and random offsets, 1- and 8-bit flips in the header
and anywhere, overwritten headers, wrong extensions, a 100000x100000 "bomb" PNG) with
``--trunc`` random truncations and ``--flips`` bit-flip copies per seed and per round,
``--rounds`` times with different random seeds, and scores each round's folder in one
``qualitas score --timeout`` run. A crash is a worker process that died, or a traceback; a
hang is an input stopped by the timeout. Target: 0 of both.

    .venv/bin/python benchmarks/bench_fuzz.py [--rounds 5] [--trunc 20] [--flips 20] [--timeout 60]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from fuzz_helpers import build_corpus, run_corpus  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--trunc", type=int, default=20, help="random truncations per seed and round")
    ap.add_argument("--flips", type=int, default=20, help="bit-flip copies per seed and round")
    ap.add_argument("--timeout", type=float, default=60.0)
    ap.add_argument("--metric", default="brisque")
    ap.add_argument("--jobs", type=int, default=1)
    args = ap.parse_args()
    totals = {
        "tried": 0,
        "errors": 0,
        "scored": 0,
        "crashed": 0,
        "timed_out": 0,
        "multi_line": 0,
        "wall_s": 0.0,
    }
    problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix="qualitas-fuzz-") as tmp:
        for r in range(args.rounds):
            folder = Path(tmp) / f"round{r}"
            build_corpus(folder, seed=r, n_trunc=args.trunc, n_flip=args.flips)
            stats = run_corpus(
                folder / "corpus",
                folder / "r.jsonl",
                timeout=args.timeout,
                metric=args.metric,
                jobs=args.jobs,
            )
            problems += stats.pop("problems")
            print(f"round {r}: {json.dumps(stats)}", flush=True)
            for k in totals:
                totals[k] += stats[k]
    totals["wall_s"] = round(totals["wall_s"], 1)
    print("total:", json.dumps(totals))
    for p in problems:
        print("problem:", p)


if __name__ == "__main__":
    main()
