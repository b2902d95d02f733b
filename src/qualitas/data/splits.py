"""Train/val/test splits: the manifest's ``split`` field, else a seeded split by content.

A random split must never put the same content (``group``: the source/reference) in two
splits, or the test figures measure memorisation of content instead of quality.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence

from qualitas.data.manifest import SPLITS, ManifestError, Record

DEFAULT_RATIOS = {"train": 0.7, "val": 0.1, "test": 0.2}


def content_key(rec: Record) -> str:
    """Content id of a record: ``group``, else the reference, else the media itself."""
    return rec.group or rec.ref or rec.path or f"{rec.better}|{rec.worse}"


def _check_ratios(ratios: Mapping[str, float]) -> dict[str, float]:
    bad = [k for k in ratios if k not in SPLITS]
    if bad:
        raise ManifestError(f"unknown split name '{bad[0]}' in ratios; use {', '.join(SPLITS)}")
    r = {k: float(ratios.get(k, 0.0)) for k in SPLITS}
    if any(v < 0 for v in r.values()) or sum(r.values()) <= 0:
        raise ManifestError(f"split ratios must be non-negative and not all zero, got {dict(ratios)}")
    total = sum(r.values())
    return {k: v / total for k, v in r.items()}


def grouped_random_split(
    records: Sequence[Record], ratios: Mapping[str, float] = DEFAULT_RATIOS, seed: int = 0
) -> dict[str, list[int]]:
    """Seeded split of record indices by content group, sizes close to ``ratios``.

    Every split with a positive ratio gets at least one group when there are enough groups.
    Returns ``{"train": [...], "val": [...], "test": [...]}`` (indices in manifest order).
    """
    r = _check_ratios(ratios)
    groups: dict[str, list[int]] = {}
    for i, rec in enumerate(records):
        groups.setdefault(content_key(rec), []).append(i)
    keys = list(groups)
    random.Random(seed).shuffle(keys)
    wanted = [s for s in SPLITS if r[s] > 0]
    # Largest ratio first so a 2-group dataset still gets a training split.
    wanted.sort(key=lambda s: -r[s])
    target = {s: r[s] * len(records) for s in SPLITS}
    count = dict.fromkeys(SPLITS, 0)
    out: dict[str, list[int]] = {s: [] for s in SPLITS}
    for n, key in enumerate(keys):
        if n < len(wanted):
            split = wanted[n]
        else:  # the split furthest below its target size
            split = max(wanted, key=lambda s: (target[s] - count[s]) / max(target[s], 1e-9))
        out[split].extend(groups[key])
        count[split] += len(groups[key])
    return {s: sorted(v) for s, v in out.items()}


def assign_splits(
    records: Sequence[Record], ratios: Mapping[str, float] = DEFAULT_RATIOS, seed: int = 0
) -> dict[str, list[int]]:
    """Indices per split: the ``split`` field when records have one, else a grouped split.

    Raises ManifestError when only some records carry a split (ambiguous).
    """
    have = [rec.split is not None for rec in records]
    if any(have) and not all(have):
        missing = have.count(False)
        first = next(rec for rec in records if rec.split is None)
        raise ManifestError(
            f"{missing} of {len(records)} records have no 'split' while others do "
            f"(first: line {first.line}); give every record a split, or none for a seeded split"
        )
    if records and all(have):
        out: dict[str, list[int]] = {s: [] for s in SPLITS}
        for i, rec in enumerate(records):
            out[rec.split].append(i)  # type: ignore[index]
        return out
    return grouped_random_split(records, ratios, seed)


def leaked_groups(records: Sequence[Record], splits: Mapping[str, Sequence[int]]) -> list[str]:
    """Content groups found in more than one split (empty for a clean split)."""
    seen: dict[str, set[str]] = {}
    for name, idx in splits.items():
        for i in idx:
            seen.setdefault(content_key(records[i]), set()).add(name)
    return sorted(k for k, v in seen.items() if len(v) > 1)
