"""Platform and tool formats: CenseoQoE JSON, ICME UGC JSON, RankIQA label.txt, generic IQA CSV."""

from __future__ import annotations

import json
import posixpath
import re

from qualitas.data.converters.base import (
    ConvertContext,
    ConvertError,
    converter,
    is_number,
    read_text,
    stem,
    to_float,
)
from qualitas.data.manifest import Record


def _split_from_name(name: str) -> str | None:
    low = name.lower()
    for key, split in (("train", "train"), ("val", "val"), ("test", "test")):
        if re.search(rf"(^|[^a-z]){key}", low):
            return split
    return None


def _load_json(path) -> object:
    try:
        return json.loads(read_text(path))
    except json.JSONDecodeError as err:
        raise ConvertError(f"{path}: not valid JSON ({err.msg} at line {err.lineno})") from None


@converter(
    "censeo",
    media="image or video",
    reads="CenseoQoE unified JSON: {file name: {ref_video, ref_dir, dis_dir, mos, mos_dv, std, mos_list}}",
    scale="as rated on the platform (CenseoQoE: 1-5 ACR; higher is better)",
)
def censeo(ctx: ConvertContext) -> list[Record]:
    """CenseoQoE training JSON (one file, or every *.json in the folder; split from 'train'/'test' in the name)."""
    # Only top-level files: a dataset folder may hold unrelated JSON deeper down.
    files = [f for f in ctx.find_all("*.json") if f.parent == ctx.src or f == ctx.label_file]
    if not files:
        raise ConvertError(f"{ctx.src}: no .json file found")
    out = []
    for label in files:
        data = _load_json(label)
        if not isinstance(data, dict):
            raise ConvertError(f"{label.name}: expected an object mapping file names to entries")
        split = _split_from_name(label.name)
        for name, info in data.items():
            if not isinstance(info, dict) or "mos" not in info:
                raise ConvertError(f"{label.name}: entry {name!r} has no 'mos' (not a CenseoQoE JSON?)")
            where = f"{label.name}: {name}"
            dis_dir = str(info.get("dis_dir") or "")
            path = posixpath.join(dis_dir, name) if dis_dir else name
            ref_name = info.get("ref_video")
            ref = None
            if ref_name:
                ref_dir = str(info.get("ref_dir") or "")
                ref = posixpath.join(ref_dir, str(ref_name)) if ref_dir else str(ref_name)
            extra: dict = {}
            if info.get("mos_dv") is not None:
                extra["mos_dv"] = to_float(info["mos_dv"], "mos_dv", where)
            if info.get("mos_list"):
                # Individual ratings, not a histogram: kept as-is rather than as votes.
                extra["ratings"] = [to_float(v, "mos_list", where) for v in info["mos_list"]]
            out.append(
                Record(
                    path=ctx.media_path(path, stem=stem(name)) if not posixpath.isabs(path) else path,
                    ref=(ctx.media_path(ref, stem=stem(ref)) if ref and not posixpath.isabs(ref) else ref),
                    mos=to_float(info["mos"], "mos", where),
                    std=None if info.get("std") is None else to_float(info["std"], "std", where),
                    group=stem(str(ref_name or name)),
                    split=split,
                    extra=extra,
                )
            )
    return out


@converter(
    "icme_ugc",
    media="video",
    reads="ugcset_mos.json and ugcset_dmos.json: {train|test: {dis: [...], ref: [...], mos: [...]}}",
    scale="MOS 1-5 (higher is better); DMOS kept as extra 'dmos'",
)
def icme_ugc(ctx: ConvertContext) -> list[Record]:
    """ICME 2021 UGC-VQA challenge labels (train / test splits)."""
    mos_file = ctx.find("*ugc*_mos.json", "*mos.json")
    dmos_file = ctx.find("*ugc*_dmos.json", "*dmos.json", required=False)
    if dmos_file == mos_file:
        dmos_file = None
    mos_data = _load_json(mos_file)
    dmos_data = _load_json(dmos_file) if dmos_file else {}
    if not isinstance(mos_data, dict) or not isinstance(dmos_data, dict):
        raise ConvertError(f"{mos_file.name}: expected an object with 'train'/'test' parts")
    out = []
    for part in sorted(mos_data):
        block = mos_data[part]
        if not isinstance(block, dict) or "dis" not in block or "mos" not in block:
            raise ConvertError(f"{mos_file.name}: part {part!r} needs 'dis' and 'mos' lists")
        if len(block["dis"]) != len(block["mos"]):
            raise ConvertError(f"{mos_file.name}: part {part!r}: 'dis' and 'mos' differ in length")
        dblock = dmos_data.get(part, {}) if isinstance(dmos_data, dict) else {}
        dmos_by_name = dict(zip(dblock.get("dis", []), dblock.get("mos", [])))
        ref_by_name = dict(zip(dblock.get("dis", []), dblock.get("ref", [])))
        ref_by_name.update(zip(block.get("dis", []), block.get("ref", [])))
        split = {"train": "train", "test": "test", "val": "val", "validation": "val"}.get(part.lower())
        for name, mos in zip(block["dis"], block["mos"]):
            where = f"{mos_file.name}: {name}"
            ref = ref_by_name.get(name)
            extra = {}
            if name in dmos_by_name:
                extra["dmos"] = to_float(dmos_by_name[name], "dmos", where)
            out.append(
                Record(
                    path=ctx.media_path(str(name), f"videos/{name}", stem=stem(str(name))),
                    ref=ctx.media_path(str(ref), f"videos/{ref}", stem=stem(str(ref))) if ref else None,
                    mos=to_float(mos, "mos", where),
                    group=stem(str(ref or name)),
                    split=split,
                    extra=extra,
                )
            )
    return out


@converter(
    "rankiqa",
    media="image",
    reads="label.txt in one of 3 forms: 'better,worse' pairs; 'path,p1,...,pN' distributions; 'path,score' "
    "(one file, or SRC_DIR/label.txt and SRC_DIR/{train,val,test}/label.txt)",
    scale="as written (distribution bins are scores 1..N; higher is better)",
)
def rankiqa(ctx: ConvertContext) -> list[Record]:
    """RankIQA-style label.txt; split from the folder name (train/val/test) when there is one."""
    files = ctx.find_all("label.txt", "*.txt") if ctx.label_file is not None else ctx.find_all("label.txt")
    if not files:
        raise ConvertError(f"{ctx.src}: no label.txt found")
    out = []
    for label in files:
        split = {"train": "train", "val": "val", "test": "test"}.get(label.parent.name.lower())
        out += _rankiqa_file(ctx, label, split)
    return out


def _rankiqa_file(ctx: ConvertContext, label, split: str | None) -> list[Record]:
    rows = [
        (i, [p.strip() for p in line.split(",")])
        for i, line in enumerate(read_text(label).splitlines(), start=1)
        if line.strip()
    ]
    if not rows:
        return []
    first = rows[0][1]
    if len(first) == 2 and not is_number(first[1]):
        form = "pairs"
    elif len(first) == 2:
        form = "score"
    else:
        form = "distribution"
    label_dir = ctx.rel(label.parent)

    def resolve(p: str) -> str:
        # RankIQA writes paths relative to the project (data/train/...); accept paths
        # relative to the label file's folder too.
        cands = [p] + ([posixpath.join(label_dir, p)] if label_dir not in ("", ".") else [])
        return ctx.media_path(*cands)

    out = []
    for i, parts in rows:
        where = f"{label.name}:{i}"
        if form == "pairs":
            if len(parts) != 2 or is_number(parts[1]):
                raise ConvertError(f"{where}: expected 'better,worse' like line 1")
            out.append(
                Record(better=resolve(parts[0]), worse=resolve(parts[1]), group=stem(parts[0]), split=split)
            )
        elif form == "score":
            if len(parts) != 2:
                raise ConvertError(f"{where}: expected 'path,score' like line 1")
            out.append(
                Record(
                    path=resolve(parts[0]),
                    mos=to_float(parts[1], "score", where),
                    group=stem(parts[0]),
                    split=split,
                )
            )
        else:
            if len(parts) != len(first):
                raise ConvertError(f"{where}: {len(parts) - 1} bins but line 1 has {len(first) - 1}")
            probs = [to_float(p, "probability", where) for p in parts[1:]]
            total = sum(probs)
            # Bins are the scores 1..N (RankIQA's EMD convention).
            mean = sum((k + 1) * p for k, p in enumerate(probs)) / total if total > 0 else None
            out.append(
                Record(path=resolve(parts[0]), mos=mean, votes=probs, group=stem(parts[0]), split=split)
            )
    return out


@converter(
    "generic_csv",
    media="image",
    reads="CSV dis_img_path,dis_type,[ref_img_path,]score (header optional)",
    scale="as written (higher is better assumed)",
)
def generic_csv(ctx: ConvertContext) -> list[Record]:
    """The dis_img_path,dis_type,[ref_img_path,]score CSV used by several IQA toolboxes."""
    files = [f for f in ctx.find_all("*.csv") if f.parent == ctx.src or f == ctx.label_file]
    if not files:
        raise ConvertError(f"{ctx.src}: no .csv file found")
    out = []
    for label in files:
        lines = [ln for ln in read_text(label).splitlines() if ln.strip()]
        if not lines:
            continue
        head = [c.strip().lower() for c in lines[0].split(",")]
        if "dis_img_path" in head or not is_number(head[-1]):
            if "dis_img_path" not in head or "score" not in head:
                raise ConvertError(
                    f"{label.name}: header needs dis_img_path and score columns, got {lines[0]!r}"
                )
            cols = head
            body = list(enumerate(lines[1:], start=2))
        else:
            cols = (
                ["dis_img_path", "dis_type", "score"]
                if len(head) == 3
                else ["dis_img_path", "dis_type", "ref_img_path", "score"]
            )
            if len(head) not in (3, 4):
                raise ConvertError(
                    f"{label.name}:1: expected 3 or 4 columns without a header, got {len(head)}"
                )
            body = list(enumerate(lines, start=1))
        split = _split_from_name(label.name)
        for i, line in body:
            parts = [p.strip() for p in line.split(",")]
            if len(parts) != len(cols):
                raise ConvertError(f"{label.name}:{i}: {len(parts)} fields, expected {len(cols)}")
            row = dict(zip(cols, parts))
            where = f"{label.name}:{i}"
            ref = row.get("ref_img_path") or None
            dist = row["dis_img_path"]
            extra = {"dist_type": row["dis_type"]} if row.get("dis_type") else {}
            out.append(
                Record(
                    path=ctx.media_path(dist),
                    ref=ctx.media_path(ref) if ref else None,
                    mos=to_float(row["score"], "score", where),
                    group=stem(ref or dist),
                    split=split,
                    extra=extra,
                )
            )
    return out
