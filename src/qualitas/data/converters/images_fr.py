"""Full-reference image datasets: KADID-10k, TID2013, LIVE IQA release 2, CSIQ."""

from __future__ import annotations

import math
import re

from qualitas.data.converters.base import (
    ConvertContext,
    ConvertError,
    converter,
    get_ci,
    load_mat,
    mat_vector,
    read_csv_dicts,
    read_text,
    stem,
    table_rows,
    to_float,
)
from qualitas.data.manifest import Record


@converter(
    "kadid10k",
    media="image",
    reads="dmos.csv (dist_img, ref_img, dmos, var); images/",
    scale="MOS 1-5 (the column is named dmos but higher is better)",
)
def kadid10k(ctx: ConvertContext) -> list[Record]:
    """KADID-10k: 81 references x 25 distortion types x 5 levels."""
    label = ctx.find("dmos.csv")
    out = []
    for i, row in enumerate(read_csv_dicts(label), start=2):
        where = f"{label.name}:{i}"
        dist, ref = str(get_ci(row, "dist_img")), str(get_ci(row, "ref_img"))
        var = get_ci(row, "var")
        extra = {}
        m = re.match(r"^I\d+_(\d+)_(\d+)", stem(dist), re.IGNORECASE)
        if m:
            extra = {"dist_type": int(m.group(1)), "dist_level": int(m.group(2))}
        out.append(
            Record(
                path=ctx.media_path(f"images/{dist}", f"distorted_images/{dist}", dist, stem=stem(dist)),
                ref=ctx.media_path(f"images/{ref}", f"reference_images/{ref}", ref, stem=stem(ref)),
                mos=to_float(get_ci(row, "dmos"), "dmos", where),
                std=math.sqrt(max(to_float(var, "var", where), 0.0)) if var is not None else None,
                group=stem(ref),
                extra=extra,
            )
        )
    ctx.notes.append("kadid10k: no official split")
    return out


@converter(
    "tid2013",
    media="image",
    reads="mos_with_names.txt (lines 'MOS name'), mos_std.txt; distorted_images/, reference_images/",
    scale="MOS 0-9 (higher is better)",
)
def tid2013(ctx: ConvertContext) -> list[Record]:
    """TID2013: 25 references x 24 distortion types x 5 levels."""
    label = ctx.find("mos_with_names.txt")
    std_file = ctx.find("mos_std.txt", required=False)
    lines = [ln.split() for ln in read_text(label).splitlines() if ln.strip()]
    stds = [ln.strip() for ln in read_text(std_file).splitlines() if ln.strip()] if std_file else None
    if stds is not None and len(stds) != len(lines):
        raise ConvertError(f"{std_file}: {len(stds)} values but {label.name} has {len(lines)} rows")
    out = []
    for i, parts in enumerate(lines):
        where = f"{label.name}:{i + 1}"
        if len(parts) != 2:
            raise ConvertError(f"{where}: expected 'MOS name', got {' '.join(parts)!r}")
        mos, name = to_float(parts[0], "MOS", where), parts[1]
        m = re.match(r"^i(\d+)_(\d+)_(\d+)", stem(name), re.IGNORECASE)
        if not m:
            raise ConvertError(f"{where}: name {name!r} is not like i01_01_1.bmp")
        ref_id = f"I{m.group(1)}"
        out.append(
            Record(
                path=ctx.media_path(f"distorted_images/{name}", name, stem=stem(name)),
                ref=ctx.media_path(f"reference_images/{ref_id}.BMP", f"reference_images/{ref_id}.bmp"),
                mos=mos,
                std=to_float(stds[i], "std", f"mos_std.txt:{i + 1}") if stds else None,
                group=ref_id,
                extra={"dist_type": int(m.group(2)), "dist_level": int(m.group(3))},
            )
        )
    ctx.notes.append("tid2013: no official split")
    return out


# LIVE release 2 orders its 982 scores folder by folder, images img1..imgN in each.
_LIVE_FOLDERS = (("jp2k", 227), ("jpeg", 233), ("wn", 174), ("gblur", 174), ("fastfading", 174))


@converter(
    "live_iqa",
    media="image",
    reads="dmos_realigned.mat (dmos_new, dmos_std, orgs) or dmos.mat (dmos, orgs), refnames_all.mat, "
    "<folder>/info.txt; jp2k/ jpeg/ wn/ gblur/ fastfading/ refimgs/",
    scale="DMOS about 0-100 (LOWER is better)",
    higher_is_better=False,
)
def live_iqa(ctx: ConvertContext) -> list[Record]:
    """LIVE IQA release 2: 29 references, 5 distortion types, 982 rows (779 distorted + copies of refs)."""
    realigned = ctx.find("dmos_realigned.mat", required=False)
    if realigned is not None:
        mat = load_mat(realigned)
        dmos = mat_vector(mat, "dmos_new", realigned)
        dstd = mat_vector(mat, "dmos_std", realigned) if "dmos_std" in mat else None
        orgs = mat_vector(mat, "orgs", realigned)
    else:
        plain = ctx.find("dmos.mat")
        mat = load_mat(plain)
        dmos, dstd, orgs = mat_vector(mat, "dmos", plain), None, mat_vector(mat, "orgs", plain)
    ref_file = ctx.find("refnames_all.mat")
    refs = [str(r) for r in mat_vector(load_mat(ref_file), "refnames_all", ref_file)]
    total = sum(n for _, n in _LIVE_FOLDERS)
    if not (len(dmos) == len(orgs) == len(refs) == total):
        raise ConvertError(
            f"{ctx.src}: expected {total} entries in dmos/orgs/refnames_all, got "
            f"{len(dmos)}/{len(orgs)}/{len(refs)}"
        )
    out = []
    k = 0
    for folder, count in _LIVE_FOLDERS:
        params = _live_info(ctx, folder)
        for j in range(1, count + 1):
            img = f"img{j}.bmp"
            extra: dict = {"dist_type": folder}
            if img in params:
                extra["dist_param"] = params[img]
            if int(orgs[k]) == 1:
                extra["is_reference"] = True  # a copy of the reference scored like the distorted images
            out.append(
                Record(
                    path=ctx.media_path(f"{folder}/{img}"),
                    ref=ctx.media_path(f"refimgs/{refs[k]}"),
                    mos=float(dmos[k]),
                    std=float(dstd[k]) if dstd is not None else None,
                    group=stem(refs[k]),
                    extra=extra,
                )
            )
            k += 1
    ctx.notes.append(
        "live_iqa: no official split; rows with orgs=1 (reference copies) are marked is_reference"
    )
    return out


def _live_info(ctx: ConvertContext, folder: str) -> dict[str, float]:
    """``img name -> distortion parameter`` from ``<folder>/info.txt`` (lines 'ref img param')."""
    rel = ctx.index.resolve(f"{folder}/info.txt")
    if rel is None:
        return {}
    out = {}
    for line in read_text(ctx.src / rel).splitlines():
        parts = line.split()
        if len(parts) >= 3:
            try:
                out[parts[1]] = float(parts[2])
            except ValueError:
                continue
    return out


# dst_type in the spreadsheet -> (folder, file tag) of dst_imgs/<folder>/<image>.<tag>.<level>.png
_CSIQ_TYPES = {
    "noise": ("awgn", "AWGN"),
    "awgn": ("awgn", "AWGN"),
    "jpeg": ("jpeg", "JPEG"),
    "jpeg 2000": ("jpeg2000", "jpeg2000"),
    "jpeg2000": ("jpeg2000", "jpeg2000"),
    "f noise": ("fnoise", "fnoise"),
    "fnoise": ("fnoise", "fnoise"),
    "blur": ("blur", "BLUR"),
    "contrast": ("contrast", "contrast"),
}


@converter(
    "csiq",
    media="image",
    reads="csiq.DMOS.xlsx sheet all_by_image (or a CSV export: image, dst_idx, dst_type, dst_lev, dmos_std, "
    "dmos); dst_imgs/<type>/, src_imgs/",
    scale="DMOS 0-1 (LOWER is better)",
    higher_is_better=False,
)
def csiq(ctx: ConvertContext) -> list[Record]:
    """CSIQ: 30 references x 6 distortion types x 4-5 levels (866 rated images)."""
    label = ctx.find("csiq.DMOS.xlsx", "csiq*dmos*.xlsx", "csiq*dmos*.csv", "csiq*.csv")
    rows = table_rows(label, ["image", "dst_type", "dst_lev", "dmos"], sheet="all_by_image")
    out = []
    for i, row in enumerate(rows, start=1):
        where = f"{label.name}: row {i}"
        image = get_ci(row, "image")
        if isinstance(image, float) and image.is_integer():
            image = int(image)  # "1600" comes back from Excel as a number
        image = str(image).strip()
        dtype = str(get_ci(row, "dst_type")).strip().lower()
        if dtype not in _CSIQ_TYPES:
            raise ConvertError(f"{where}: unknown dst_type {dtype!r}")
        folder, tag = _CSIQ_TYPES[dtype]
        level = int(to_float(get_ci(row, "dst_lev"), "dst_lev", where))
        fname = f"{image}.{tag}.{level}.png"
        std = get_ci(row, "dmos_std")
        out.append(
            Record(
                path=ctx.media_path(
                    f"dst_imgs/{folder}/{fname}", f"dst_imgs_all/{fname}", f"dst_imgs/{fname}"
                ),
                ref=ctx.media_path(f"src_imgs/{image}.png", f"{image}.png"),
                mos=to_float(get_ci(row, "dmos"), "dmos", where),
                std=None if std is None else to_float(std, "dmos_std", where),
                group=image,
                extra={"dist_type": folder, "dist_level": level},
            )
        )
    ctx.notes.append("csiq: no official split")
    return out
