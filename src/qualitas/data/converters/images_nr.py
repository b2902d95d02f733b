"""No-reference image datasets: KonIQ-10k, LIVE In the Wild Challenge, SPAQ, AVA."""

from __future__ import annotations

import math

from qualitas.data.converters.base import (
    ConvertContext,
    ConvertError,
    converter,
    get_ci,
    load_mat,
    mat_vector,
    read_text,
    stem,
    table_rows,
    to_float,
)
from qualitas.data.manifest import Record

_KONIQ_SETS = {"training": "train", "train": "train", "validation": "val", "val": "val", "test": "test"}


@converter(
    "koniq10k",
    media="image",
    reads="koniq10k_scores_and_distributions.csv (or koniq10k_distributions_sets.csv); 1024x768/ or 512x384/",
    scale="MOS 1-5 (higher is better); votes c1..c5",
)
def koniq10k(ctx: ConvertContext) -> list[Record]:
    """KonIQ-10k: image_name, c1..c5 vote counts, c_total, MOS, SD, MOS_zscore [, set]."""
    label = ctx.find("koniq10k_distributions_sets.csv", "koniq10k_scores_and_distributions.csv", "koniq*.csv")
    rows = table_rows(label, ["image_name", "MOS"])
    has_set = rows and any(str(k).lower() == "set" for k in rows[0])
    if not has_set:
        ctx.notes.append(
            "koniq10k: no 'set' column, so no official split (koniq10k_distributions_sets.csv has one)"
        )
    out = []
    for i, row in enumerate(rows, start=2):
        where = f"{label.name}:{i}"
        name = str(get_ci(row, "image_name"))
        votes = [to_float(get_ci(row, f"c{k}", default=0), f"c{k}", where) for k in range(1, 6)]
        split = None
        if has_set:
            raw = str(get_ci(row, "set", default="")).strip().lower()
            split = _KONIQ_SETS.get(raw)
            if split is None:
                raise ConvertError(f"{where}: unknown set {raw!r}")
        extra = {}
        z = get_ci(row, "MOS_zscore")
        if z is not None:
            extra["mos_zscore"] = to_float(z, "MOS_zscore", where)
        out.append(
            Record(
                path=ctx.media_path(
                    f"1024x768/{name}", f"512x384/{name}", f"images/{name}", name, stem=stem(name)
                ),
                mos=to_float(get_ci(row, "MOS"), "MOS", where),
                std=_opt_float(get_ci(row, "SD"), "SD", where),
                votes=votes,
                group=stem(name),
                split=split,
                extra=extra,
            )
        )
    return out


@converter(
    "live_challenge",
    media="image",
    reads="Data/AllImages_release.mat, Data/AllMOS_release.mat, Data/AllStdDev_release.mat; Images/",
    scale="MOS 0-100 (higher is better)",
)
def live_challenge(ctx: ConvertContext) -> list[Record]:
    """LIVE In the Wild Challenge (CLIVE): 1169 images incl. the 7 rater-training images t1..t7."""
    names_file = ctx.find("AllImages_release.mat")
    mos_file = ctx.find("AllMOS_release.mat")
    std_file = ctx.find("AllStdDev_release.mat", required=False)
    names = mat_vector(load_mat(names_file), "AllImages_release", names_file)
    mos = mat_vector(load_mat(mos_file), "AllMOS_release", mos_file)
    std = mat_vector(load_mat(std_file), "AllStdDev_release", std_file) if std_file else [None] * len(names)
    if not (len(names) == len(mos) == len(std)):
        raise ConvertError(
            f"{ctx.src}: AllImages_release ({len(names)}), AllMOS_release ({len(mos)}) and "
            f"AllStdDev_release ({len(std)}) differ in length"
        )
    out = []
    for name, m, s in zip(names, mos, std):
        name = str(name)
        # The 7 images shown to raters for training live in Images/trainingImages/.
        training = name.lower().startswith("t")
        cands = [f"Images/trainingImages/{name}", f"Images/{name}"] if training else [f"Images/{name}"]
        extra = {"clive_training": True} if training else {}
        out.append(
            Record(
                path=ctx.media_path(*cands, name, stem=stem(name)),
                mos=float(m),
                std=None if s is None else float(s),
                group=stem(name),
                extra=extra,
            )
        )
    ctx.notes.append(
        "live_challenge: no official split; the 7 rater-training images are marked clive_training"
    )
    return out


_SPAQ_ATTRS = ("Brightness", "Colorfulness", "Contrast", "Noisiness", "Sharpness")


@converter(
    "spaq",
    media="image",
    reads="MOS and Image attribute scores.xlsx (or a CSV export of it); TestImage/",
    scale="MOS 0-100 (higher is better)",
)
def spaq(ctx: ConvertContext) -> list[Record]:
    """SPAQ: Image name, MOS, Brightness, Colorfulness, Contrast, Noisiness, Sharpness."""
    label = ctx.find(
        "MOS and Image attribute scores.xlsx",
        "MOS_and_Image_attribute_scores.xlsx",
        "MOS*attribute*.xlsx",
        "MOS*attribute*.csv",
    )
    rows = table_rows(label, ["Image name", "MOS"])
    out = []
    for i, row in enumerate(rows, start=2):
        where = f"{label.name}:{i}"
        name = str(get_ci(row, "Image name", "Image_name"))
        extra = {}
        for attr in _SPAQ_ATTRS:
            v = get_ci(row, attr)
            if v is not None:
                extra[attr.lower()] = to_float(v, attr, where)
        out.append(
            Record(
                path=ctx.media_path(f"TestImage/{name}", name, stem=stem(name)),
                mos=to_float(get_ci(row, "MOS"), "MOS", where),
                group=stem(name),
                extra=extra,
            )
        )
    ctx.notes.append("spaq: no official split")
    return out


@converter(
    "ava",
    media="image",
    reads="AVA.txt (index, image id, 10 vote counts, 2 semantic tags, challenge id); images/",
    scale="mean rating 1-10 (higher is better); votes = 10-bin histogram",
)
def ava(ctx: ConvertContext) -> list[Record]:
    """AVA: aesthetic vote histograms (NIMA-style EMD targets)."""
    label = ctx.find("AVA.txt")
    out = []
    for i, line in enumerate(read_text(label).splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) < 12:
            raise ConvertError(f"{label.name}:{i}: expected at least 12 fields, got {len(parts)}")
        where = f"{label.name}:{i}"
        image_id = parts[1]
        votes = [to_float(v, "vote count", where) for v in parts[2:12]]
        total = sum(votes)
        mean = sum((k + 1) * v for k, v in enumerate(votes)) / total if total > 0 else None
        std = (
            math.sqrt(sum(v * ((k + 1) - mean) ** 2 for k, v in enumerate(votes)) / total)
            if mean is not None
            else None
        )
        extra = {"ava_index": int(parts[0])}
        if len(parts) >= 15:
            extra.update(semantic_tags=[int(parts[12]), int(parts[13])], challenge=int(parts[14]))
        out.append(
            Record(
                path=ctx.media_path(f"images/{image_id}.jpg", f"{image_id}.jpg", stem=image_id),
                mos=mean,
                std=std,
                votes=votes,
                group=image_id,
                extra=extra,
            )
        )
    ctx.notes.append("ava: no official split in AVA.txt")
    return out


def _opt_float(value, what: str, where: str) -> float | None:
    return None if value is None else to_float(value, what, where)
