"""No-reference video datasets: KoNViD-1k, KoNViD-150k, LSVQ, YouTube-UGC, LIVE-VQC."""

from __future__ import annotations

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
    "konvid1k",
    media="video",
    reads="KoNViD_1k_attributes.csv (flickr_id, MOS, SD, file_name) or KoNViD_1k_mos.csv (flickr_id, mos); "
    "KoNViD_1k_videos/",
    scale="MOS 1-5 (higher is better)",
)
def konvid1k(ctx: ConvertContext) -> list[Record]:
    """KoNViD-1k: 1200 Flickr videos, 8 s each."""
    label = ctx.find("KoNViD_1k_attributes.csv", "KoNViD_1k_mos.csv", "KoNViD*.csv")
    out = []
    for i, row in enumerate(read_csv_dicts(label), start=2):
        where = f"{label.name}:{i}"
        fid = str(get_ci(row, "flickr_id", default="")).strip()
        fname = str(get_ci(row, "file_name", default="")).strip()
        if not fid and not fname:
            raise ConvertError(f"{where}: neither flickr_id nor file_name")
        fid = fid or stem(fname).split("_")[0]
        # The video archive names files <flickr_id>.mp4; file_name in the attributes is the
        # original crop name, so try both.
        cands = [f"KoNViD_1k_videos/{fid}.mp4", f"{fid}.mp4"] + (
            [f"KoNViD_1k_videos/{fname}", fname] if fname else []
        )
        std = get_ci(row, "SD", "std")
        out.append(
            Record(
                path=ctx.media_path(*cands, stem=fid),
                mos=to_float(get_ci(row, "MOS", "mos"), "MOS", where),
                std=None if std is None else to_float(std, "SD", where),
                group=fid,
            )
        )
    ctx.notes.append("konvid1k: no official split")
    return out


@converter(
    "konvid150k",
    media="video",
    reads="k150ka_scores.csv / k150kb_scores.csv (video_name, [mos,] video_score), or PaddleVideo-style "
    "'path score' lists train.txt / eval.txt / val.txt / test.txt",
    scale="MOS 1-5 (higher is better)",
)
def konvid150k(ctx: ConvertContext) -> list[Record]:
    """KoNViD-150k: set A (152k videos) = train, set B (1.5k videos) = test."""
    out: list[Record] = []
    csvs = ctx.find_all("k150ka_scores.csv", "k150kb_scores.csv")
    for label in csvs:
        part = "a" if "k150ka" in label.name.lower() else "b"
        for i, row in enumerate(read_csv_dicts(label), start=2):
            where = f"{label.name}:{i}"
            name = str(get_ci(row, "video_name", "name"))
            score = get_ci(row, "mos", "video_score")
            out.append(
                Record(
                    path=ctx.media_path(
                        f"k150k{part}/{name}",
                        f"k150k{part}_extracted/{name}",
                        f"clips/{name}",
                        name,
                        stem=stem(name),
                    ),
                    mos=to_float(score, "video_score", where),
                    group=stem(name),
                    split="train" if part == "a" else "test",
                    extra={"subset": f"k150k{part}"},
                )
            )
    if out:
        return out
    # Any .txt given by name on the command line; in a folder only the conventional names.
    extra_pattern = ("*.txt",) if ctx.label_file is not None else ()
    lists = ctx.find_all("train.txt", "eval.txt", "val.txt", "test.txt", *extra_pattern)
    if not lists:
        raise ConvertError(f"{ctx.src}: no k150k*_scores.csv and no 'path score' .txt lists found")
    for label in lists:
        base = stem(label.name).lower()
        # PaddleVideo's eval.txt holds KoNViD-150k-B, the official test set.
        split = {"train": "train", "eval": "test", "test": "test", "val": "val"}.get(base)
        out += _path_score_list(ctx, label, split)
    return out


def _path_score_list(ctx: ConvertContext, label, split: str | None) -> list[Record]:
    out = []
    base_dir = ctx.rel(label.parent)
    for i, line in enumerate(read_text(label).splitlines(), start=1):
        parts = line.replace(",", " ").split()
        if not parts:
            continue
        if len(parts) < 2:
            raise ConvertError(f"{label.name}:{i}: expected 'path score'")
        name, score = " ".join(parts[:-1]), parts[-1]
        cands = [name] + ([f"{base_dir}/{name}"] if base_dir not in ("", ".") else [])
        out.append(
            Record(
                path=ctx.media_path(*cands, stem=stem(name)),
                mos=to_float(score, "score", f"{label.name}:{i}"),
                group=stem(name),
                split=split,
            )
        )
    return out


@converter(
    "lsvq",
    media="video",
    reads="labels_train_test.csv (name, height, width, mos, frame_number[, is_test]), labels_test_1080p.csv",
    scale="MOS 0-100 (higher is better)",
)
def lsvq(ctx: ConvertContext) -> list[Record]:
    """LSVQ: train / test from is_test, plus the test-1080p set (split test, subset test_1080p)."""
    main = ctx.find("labels_train_test.csv", required=False)
    hd = ctx.find("labels_test_1080p.csv", required=False)
    if main is None and hd is None:
        raise ConvertError(f"{ctx.src}: neither labels_train_test.csv nor labels_test_1080p.csv found")
    out: list[Record] = []
    for label, subset in ((main, "train_test"), (hd, "test_1080p")):
        if label is None:
            continue
        rows = read_csv_dicts(label)
        has_is_test = bool(rows) and any(k.lower() == "is_test" for k in rows[0])
        if subset == "train_test" and not has_is_test:
            ctx.notes.append(f"lsvq: {label.name} has no is_test column, so its rows get no split")
        for i, row in enumerate(rows, start=2):
            where = f"{label.name}:{i}"
            name = str(get_ci(row, "name"))
            if subset == "test_1080p":
                split = "test"
            elif has_is_test:
                split = (
                    "test"
                    if str(get_ci(row, "is_test", default="")).strip().lower() in ("1", "true")
                    else "train"
                )
            else:
                split = None
            extra = {"subset": subset}
            for key in ("height", "width", "frame_number"):
                v = get_ci(row, key)
                if v is not None:
                    extra[key] = int(to_float(v, key, where))
            out.append(
                Record(
                    path=ctx.media_path(f"{name}.mp4", f"videos/{name}.mp4", name, stem=stem(name)),
                    mos=to_float(get_ci(row, "mos"), "mos", where),
                    group=name,
                    split=split,
                    extra=extra,
                )
            )
    return out


@converter(
    "youtube_ugc",
    media="video",
    reads="original_videos_MOS_for_YouTube_UGC_dataset.xlsx sheet MOS (or a CSV export: vid, category, "
    "resolution, MOS full); videos found by vid anywhere under SRC_DIR",
    scale="MOS 1-5 (higher is better)",
)
def youtube_ugc(ctx: ConvertContext) -> list[Record]:
    """YouTube-UGC: ~1380 originals; the chunk MOS columns are kept as extras."""
    label = ctx.find(
        "original_videos_MOS_for_YouTube_UGC_dataset.xlsx", "*MOS*YouTube*UGC*.xlsx", "*MOS*YouTube*UGC*.csv"
    )
    rows = table_rows(label, ["vid", "MOS full"], sheet="MOS")
    out = []
    for i, row in enumerate(rows, start=2):
        where = f"{label.name}:{i}"
        vid = str(get_ci(row, "vid")).strip()
        category = str(get_ci(row, "category", default="")).strip()
        res = str(get_ci(row, "resolution", default="")).strip()
        extra: dict = {}
        if category:
            extra["category"] = category
        if res:
            extra["resolution"] = res
        for key, value in row.items():
            k = str(key).strip().lower()
            if k.startswith("mos chunk") and value not in (None, ""):
                extra[k.replace(" ", "_")] = to_float(value, str(key), where)
        cands = [f"original_videos/{category}/{res}/{vid}.mkv"] if category and res else []
        cands += [f"{vid}.mkv", f"{vid}.mp4"]
        out.append(
            Record(
                path=ctx.media_path(*cands, stem=vid),
                mos=to_float(get_ci(row, "MOS full", "MOS_full"), "MOS full", where),
                group=vid,
                extra=extra,
            )
        )
    ctx.notes.append("youtube_ugc: no official split")
    return out


@converter(
    "live_vqc",
    media="video",
    reads="data.mat (video_list, mos); Video/",
    scale="MOS 0-100 (higher is better)",
)
def live_vqc(ctx: ConvertContext) -> list[Record]:
    """LIVE-VQC: 585 smartphone videos."""
    label = ctx.find("data.mat")
    mat = load_mat(label)
    names, mos = mat_vector(mat, "video_list", label), mat_vector(mat, "mos", label)
    if len(names) != len(mos):
        raise ConvertError(f"{label}: video_list ({len(names)}) and mos ({len(mos)}) differ in length")
    out = [
        Record(
            path=ctx.media_path(f"Video/{name}", f"video/{name}", str(name), stem=stem(str(name))),
            mos=float(m),
            group=stem(str(name)),
        )
        for name, m in zip(names, mos)
    ]
    ctx.notes.append("live_vqc: no official split")
    return out
