"""Each converter against a miniature of its dataset's release layout, written here."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from qualitas.data.converters import CONVERTERS, ConvertError, convert
from qualitas.data.manifest import read_manifest, write_manifest
from qualitas.errors import ConfigError


def touch(root: Path, *rels: str) -> None:
    for rel in rels:
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")


def write(root: Path, rel: str, text: str) -> Path:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text, encoding="utf-8")
    return p


def cellcol(names: list[str]) -> np.ndarray:
    """A MATLAB N x 1 cell array of strings, as the LIVE releases store names."""
    arr = np.empty((len(names), 1), dtype=object)
    for i, n in enumerate(names):
        arr[i, 0] = np.array([n])
    return arr


def xlsx(path: Path, rows: list[list], sheet: str = "Sheet1") -> None:
    openpyxl = pytest.importorskip("openpyxl")
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = sheet
    for r in rows:
        ws.append(r)
    path.parent.mkdir(parents=True, exist_ok=True)
    wb.save(path)


def test_registry_lists_every_format():
    expected = {
        "koniq10k", "live_challenge", "spaq", "ava", "kadid10k", "tid2013", "live_iqa", "csiq",
        "konvid1k", "konvid150k", "lsvq", "youtube_ugc", "live_vqc", "censeo", "icme_ugc", "rankiqa",
        "generic_csv",
    }  # fmt: skip
    assert expected <= set(CONVERTERS.names())
    with pytest.raises(ConfigError, match="did you mean 'kadid10k'"):
        convert("kadid10", ".")


def test_koniq10k_votes_split_and_missing(tmp_path):
    write(
        tmp_path,
        "koniq10k_distributions_sets.csv",
        '"image_name","c1","c2","c3","c4","c5","c_total","MOS","SD","MOS_zscore","set"\n'
        '"10004473376.jpg",0,9,43,47,1,100,3.42,0.68,70.3,"training"\n'
        '"10007357496.jpg",1,2,40,53,4,100,3.57,0.64,74.2,"test"\n'
        '"gone.jpg",0,0,10,0,0,10,3.0,0.0,50.0,"validation"\n',
    )
    touch(tmp_path, "1024x768/10004473376.jpg", "1024x768/10007357496.jpg")
    res = convert("koniq10k", tmp_path)
    assert [r.path for r in res.records] == [
        "1024x768/10004473376.jpg",
        "1024x768/10007357496.jpg",
        "1024x768/gone.jpg",
    ]
    first = res.records[0]
    assert (
        first.votes == [0, 9, 43, 47, 1]
        and first.mos == pytest.approx(3.42)
        and first.std == pytest.approx(0.68)
    )
    assert [r.split for r in res.records] == ["train", "test", "val"]
    assert first.group == "10004473376" and first.extra["mos_zscore"] == pytest.approx(70.3)
    assert res.missing_rows == 1 and "gone.jpg" in res.missing_examples[0] and res.skipped == 0
    skipped = convert("koniq10k", tmp_path, skip_missing=True)
    assert len(skipped.records) == 2 and skipped.skipped == 1


def test_live_challenge_mat_files(tmp_path):
    names = ["t1.bmp", "10.JPG", "100.bmp"]
    (tmp_path / "Data").mkdir()
    scipy.io.savemat(tmp_path / "Data/AllImages_release.mat", {"AllImages_release": cellcol(names)})
    scipy.io.savemat(tmp_path / "Data/AllMOS_release.mat", {"AllMOS_release": np.array([[63.9, 25.3, 67.2]])})
    scipy.io.savemat(
        tmp_path / "Data/AllStdDev_release.mat", {"AllStdDev_release": np.array([[18.0, 15.1, 19.9]])}
    )
    touch(tmp_path, "Images/trainingImages/t1.bmp", "Images/10.JPG", "Images/100.bmp")
    res = convert("live_challenge", tmp_path)
    assert [r.path for r in res.records] == [
        "Images/trainingImages/t1.bmp",
        "Images/10.JPG",
        "Images/100.bmp",
    ]
    assert [r.mos for r in res.records] == pytest.approx([63.9, 25.3, 67.2])
    assert res.records[2].std == pytest.approx(19.9)
    assert res.records[0].extra == {"clive_training": True} and res.missing_rows == 0


def test_spaq_xlsx_and_csv(tmp_path):
    header = ["Image name", "MOS", "Brightness", "Colorfulness", "Contrast", "Noisiness", "Sharpness"]
    xlsx(
        tmp_path / "Annotations/MOS and Image attribute scores.xlsx",
        [header, ["00001.png", 42.65, 44, 44, 42, 43, 41]],
    )
    touch(tmp_path, "TestImage/00001.png")
    res = convert("spaq", tmp_path)
    (rec,) = res.records
    assert rec.path == "TestImage/00001.png" and rec.mos == pytest.approx(42.65)
    assert rec.extra["sharpness"] == 41 and rec.group == "00001"
    csvdir = tmp_path / "csv"
    write(csvdir, "MOS_and_Image_attribute_scores.csv", ",".join(header) + "\n00002.png,80.5,1,2,3,4,5\n")
    res = convert("spaq", csvdir)
    assert res.records[0].mos == pytest.approx(80.5) and res.missing_rows == 1


def test_ava_histogram_mean(tmp_path):
    write(
        tmp_path,
        "AVA.txt",
        "1 953619 0 1 5 17 38 36 15 6 5 1 1 22 1396\n2 953958 10 7 15 26 26 21 10 8 1 2 15 21 1396\n",
    )
    touch(tmp_path, "images/953619.jpg")
    res = convert("ava", tmp_path)
    a = res.records[0]
    votes = [0, 1, 5, 17, 38, 36, 15, 6, 5, 1]
    assert a.votes == votes
    assert a.mos == pytest.approx(sum((i + 1) * v for i, v in enumerate(votes)) / sum(votes))
    assert a.extra["challenge"] == 1396 and a.extra["semantic_tags"] == [1, 22]
    assert res.missing_rows == 1 and "953958" in res.missing_examples[0]


def test_kadid10k(tmp_path):
    write(
        tmp_path,
        "dmos.csv",
        "dist_img,ref_img,dmos,var\nI01_01_01.png,I01.png,4.57,0.496\nI01_01_02.png,I01.png,4.33,0.869\n",
    )
    touch(tmp_path, "images/I01_01_01.png", "images/I01_01_02.png", "images/I01.png")
    res = convert("kadid10k", tmp_path)
    r = res.records[1]
    assert (r.path, r.ref, r.group) == ("images/I01_01_02.png", "images/I01.png", "I01")
    assert r.mos == pytest.approx(4.33) and r.std == pytest.approx(0.869**0.5)
    assert r.extra == {"dist_type": 1, "dist_level": 2} and res.missing_rows == 0
    assert "higher_is_better" not in r.extra


def test_tid2013_case_insensitive_files(tmp_path):
    write(tmp_path, "mos_with_names.txt", "5.51429 i01_01_1.bmp\n3.16667 i25_24_5.bmp\n")
    write(tmp_path, "mos_std.txt", "0.13013\n0.2\n")
    touch(tmp_path, "distorted_images/I01_01_1.BMP", "reference_images/I01.BMP", "reference_images/I25.BMP")
    res = convert("tid2013", tmp_path)
    a, b = res.records
    assert a.path == "distorted_images/I01_01_1.BMP" and a.ref == "reference_images/I01.BMP"
    assert a.mos == pytest.approx(5.51429) and a.std == pytest.approx(0.13013)
    assert b.group == "I25" and b.extra == {"dist_type": 24, "dist_level": 5}
    assert res.missing_rows == 1  # i25_24_5.bmp is not there


def test_live_iqa_release2_order(tmp_path):
    counts = [("jp2k", 227), ("jpeg", 233), ("wn", 174), ("gblur", 174), ("fastfading", 174)]
    n = sum(c for _, c in counts)
    dmos = np.linspace(0, 90, n).reshape(1, n)
    orgs = np.zeros((1, n))
    orgs[0, 1] = 1
    refs = np.empty((1, n), dtype=object)
    for i in range(n):
        refs[0, i] = np.array(["bikes.bmp" if i < n - 1 else "womanhat.bmp"])
    scipy.io.savemat(tmp_path / "dmos.mat", {"dmos": dmos, "orgs": orgs})
    scipy.io.savemat(tmp_path / "refnames_all.mat", {"refnames_all": refs})
    write(tmp_path, "jpeg/info.txt", "bikes.bmp img1.bmp 0.4\n")
    touch(tmp_path, "jp2k/img1.bmp", "jpeg/img1.bmp", "refimgs/bikes.bmp")
    res = convert("live_iqa", tmp_path)
    recs = res.records
    assert len(recs) == n
    assert (
        recs[0].path == "jp2k/img1.bmp"
        and recs[227].path == "jpeg/img1.bmp"
        and recs[-1].path == "fastfading/img174.bmp"
    )
    assert recs[227].extra["dist_param"] == pytest.approx(0.4) and recs[227].ref == "refimgs/bikes.bmp"
    assert recs[-1].mos == pytest.approx(90.0) and recs[-1].group == "womanhat"
    assert recs[1].extra["is_reference"] is True
    assert recs[0].extra["higher_is_better"] is False
    assert res.missing_rows == n - 2  # only jp2k/img1 and jpeg/img1 (+ bikes ref) exist
    scipy.io.savemat(tmp_path / "dmos.mat", {"dmos": dmos[:, :10], "orgs": orgs[:, :10]})
    with pytest.raises(ConvertError, match="expected 982"):
        convert("live_iqa", tmp_path)


def test_csiq_xlsx_header_below_title(tmp_path):
    rows = [
        ["CSIQ DMOS"], [], [],
        [None, None, None, "image", "dst_idx", "dst_type", "dst_lev", "dmos_std", "dmos"],
        [None, None, None, 1600, 1, "noise", 1, 0.061, 0.062],
        [None, None, None, "aerial_city", 3, "jpeg 2000", 2, 0.1, 0.2],
    ]  # fmt: skip
    xlsx(tmp_path / "csiq.DMOS.xlsx", rows, sheet="all_by_image")
    touch(
        tmp_path,
        "dst_imgs/awgn/1600.AWGN.1.png",
        "src_imgs/1600.png",
        "dst_imgs/jpeg2000/aerial_city.jpeg2000.2.png",
    )
    res = convert("csiq", tmp_path)
    a, b = res.records
    assert a.path == "dst_imgs/awgn/1600.AWGN.1.png" and a.ref == "src_imgs/1600.png" and a.group == "1600"
    assert a.mos == pytest.approx(0.062) and a.std == pytest.approx(0.061)
    assert (
        b.extra["dist_type"] == "jpeg2000"
        and b.extra["dist_level"] == 2
        and b.extra["higher_is_better"] is False
    )
    assert res.missing_rows == 1 and "aerial_city.png" in res.missing_examples[0]


def test_konvid1k(tmp_path):
    write(
        tmp_path,
        "KoNViD_1k_attributes.csv",
        "flickr_id,MOS,SD,file_name\n3337642103,4.64,0.6,3337642103_orig.mp4\n99,2.0,0.5,\n",
    )
    touch(tmp_path, "KoNViD_1k_videos/3337642103.mp4")
    res = convert("konvid1k", tmp_path)
    assert res.records[0].path == "KoNViD_1k_videos/3337642103.mp4" and res.records[0].mos == pytest.approx(
        4.64
    )
    assert res.records[0].std == pytest.approx(0.6) and res.records[0].group == "3337642103"
    assert res.missing_rows == 1


def test_konvid150k_csv_and_paddle_lists(tmp_path):
    write(tmp_path, "k150ka_scores.csv", "video_name,video_score\na1.mp4,3.4\n")
    write(tmp_path, "k150kb_scores.csv", "video_name,mos,video_score\nb1.mp4,3.61,3.5\n")
    touch(tmp_path, "k150ka/a1.mp4", "k150kb/b1.mp4")
    res = convert("konvid150k", tmp_path)
    assert [(r.path, r.split, r.mos) for r in res.records] == [
        ("k150ka/a1.mp4", "train", 3.4),
        ("k150kb/b1.mp4", "test", 3.61),
    ]
    paddle = tmp_path / "paddle"
    write(paddle, "train.txt", "videos/x.mp4 3.2\n")
    write(paddle, "eval.txt", "videos/y.mp4 2.9\n")
    touch(paddle, "videos/x.mp4", "videos/y.mp4")
    res = convert("konvid150k", paddle)
    assert sorted((r.path, r.split) for r in res.records) == [
        ("videos/x.mp4", "train"),
        ("videos/y.mp4", "test"),
    ]


def test_lsvq_splits(tmp_path):
    write(
        tmp_path,
        "labels_train_test.csv",
        "name,p1,height,width,mos,frame_number,is_test\nia-batch1/a,0,540,960,62.1,240,False\nyfcc-batch2/b,0,720,1280,55.0,300,True\n",
    )
    write(
        tmp_path,
        "labels_test_1080p.csv",
        "name,height,width,mos,frame_number\nyfcc-batch9/c,1080,1920,70.2,200\n",
    )
    touch(tmp_path, "ia-batch1/a.mp4", "yfcc-batch2/b.mp4", "yfcc-batch9/c.mp4")
    res = convert("lsvq", tmp_path)
    assert [(r.path, r.split, r.extra["subset"]) for r in res.records] == [
        ("ia-batch1/a.mp4", "train", "train_test"),
        ("yfcc-batch2/b.mp4", "test", "train_test"),
        ("yfcc-batch9/c.mp4", "test", "test_1080p"),
    ]
    assert res.records[0].extra["frame_number"] == 240 and res.missing_rows == 0


def test_youtube_ugc(tmp_path):
    rows = [
        ["vid", "category", "resolution", "MOS full", "MOS chunk 00"],
        ["Animation_1080P-05f8", "Animation", "1080P", 3.9, 4.1],
    ]
    xlsx(tmp_path / "original_videos_MOS_for_YouTube_UGC_dataset.xlsx", rows, sheet="MOS")
    touch(tmp_path, "original_videos/Animation/1080P/Animation_1080P-05f8.mkv")
    res = convert("youtube_ugc", tmp_path)
    (r,) = res.records
    assert r.path == "original_videos/Animation/1080P/Animation_1080P-05f8.mkv" and r.mos == pytest.approx(
        3.9
    )
    assert r.extra["mos_chunk_00"] == pytest.approx(4.1) and r.extra["category"] == "Animation"


def test_live_vqc(tmp_path):
    scipy.io.savemat(
        tmp_path / "data.mat",
        {"video_list": cellcol(["A001.mp4", "B002.mp4"]), "mos": np.array([[80.2], [41.0]])},
    )
    touch(tmp_path, "Video/A001.mp4")
    res = convert("live_vqc", tmp_path)
    assert [(r.path, r.mos) for r in res.records] == [("Video/A001.mp4", 80.2), ("Video/B002.mp4", 41.0)]
    assert res.missing_rows == 1


def test_censeo_json(tmp_path):
    data = {
        "UGC0241_crf_17.mp4": {"ref_video": "UGC0241_crf_00.mp4", "ref_dir": "", "dis_dir": "", "mos": 4.25, "mos_dv": 5.03, "std": None, "mos_list": None},
        "clip2.mp4": {"ref_video": "clip2.mp4", "ref_dir": "refs", "dis_dir": "dis", "mos": 3.0, "mos_dv": None, "std": 0.5, "mos_list": [3, 2, 4]},
    }  # fmt: skip
    label = write(tmp_path, "pgc_processed_train.json", json.dumps(data))
    touch(tmp_path, "UGC0241_crf_17.mp4", "UGC0241_crf_00.mp4", "dis/clip2.mp4", "refs/clip2.mp4")
    res = convert("censeo", label)
    a, b = res.records
    assert (a.path, a.ref, a.group, a.split) == (
        "UGC0241_crf_17.mp4",
        "UGC0241_crf_00.mp4",
        "UGC0241_crf_00",
        "train",
    )
    assert a.extra == {"mos_dv": pytest.approx(5.03)}
    assert (b.path, b.ref, b.std) == ("dis/clip2.mp4", "refs/clip2.mp4", 0.5) and b.extra["ratings"] == [
        3,
        2,
        4,
    ]
    assert b.votes is None and res.missing_rows == 0


def test_icme_ugc(tmp_path):
    mos = {
        "train": {"dis": ["UGC1_crf_22.mkv", "UGC1_crf_00.mkv"], "mos": [4.05, 4.2]},
        "test": {"dis": ["UGC2_crf_47.mkv"], "mos": [1.1]},
    }
    dmos = {
        "train": {"dis": ["UGC1_crf_22.mkv", "UGC1_crf_00.mkv"], "ref": ["UGC1_crf_00.mkv", "UGC1_crf_00.mkv"], "mos": [4.8, 5.0]},
        "test": {"dis": ["UGC2_crf_47.mkv"], "ref": ["UGC2_crf_00.mkv"], "mos": [1.5]},
    }  # fmt: skip
    write(tmp_path, "ugcset_mos.json", json.dumps(mos))
    write(tmp_path, "ugcset_dmos.json", json.dumps(dmos))
    touch(
        tmp_path,
        "videos/UGC1_crf_22.mp4",
        "videos/UGC1_crf_00.mp4",
        "videos/UGC2_crf_47.mp4",
        "videos/UGC2_crf_00.mp4",
    )
    res = convert("icme_ugc", tmp_path)
    by = {r.path: r for r in res.records}
    r = by["videos/UGC1_crf_22.mp4"]  # CenseoQoE re-muxes to .mp4: found by name stem
    assert (
        r.ref == "videos/UGC1_crf_00.mp4"
        and r.mos == pytest.approx(4.05)
        and r.extra["dmos"] == pytest.approx(4.8)
    )
    assert r.split == "train" and by["videos/UGC2_crf_47.mp4"].split == "test" and res.missing_rows == 0


@pytest.mark.parametrize("form", ["pairs", "distribution", "score"])
def test_rankiqa_three_forms(tmp_path, form):
    touch(tmp_path, "data/train/refimgs/dolls.bmp", "data/train/gaussian_noise/gaussian_noise5/dolls.bmp")
    a, b = "data/train/refimgs/dolls.bmp", "data/train/gaussian_noise/gaussian_noise5/dolls.bmp"
    text = {
        "pairs": f"{a},{b}\n",
        "distribution": f"{a},0.,0.,0.,0.2,0.8\n{b},0.1,0.2,0.4,0.2,0.1\n",
        "score": f"{a},7.6\n{b},3.2\n",
    }[form]
    write(tmp_path, "data/train/label.txt", text)
    res = convert("rankiqa", tmp_path)
    recs = res.records
    assert all(r.split == "train" and r.group == "dolls" for r in recs) and res.missing_rows == 0
    if form == "pairs":
        assert (recs[0].better, recs[0].worse, recs[0].path) == (a, b, "")
    elif form == "distribution":
        assert recs[0].votes == [0, 0, 0, 0.2, 0.8] and recs[0].mos == pytest.approx(4.8)
        assert recs[1].mos == pytest.approx(3.0)
    else:
        assert [r.mos for r in recs] == [7.6, 3.2] and recs[0].path == a


def test_rankiqa_mixed_forms_is_an_error(tmp_path):
    write(tmp_path, "label.txt", "a.bmp,b.bmp\nc.bmp,3.0\n")
    with pytest.raises(ConvertError, match="label.txt:2"):
        convert("rankiqa", tmp_path)


def test_generic_csv_with_and_without_header(tmp_path):
    write(tmp_path, "train.csv", "dis_img_path,dis_type,ref_img_path,score\ndist/a.png,jpeg,ref/a.png,55.5\n")
    touch(tmp_path, "dist/a.png", "ref/a.png", "dist/b.png")
    res = convert("generic_csv", tmp_path)
    (r,) = res.records
    assert (r.path, r.ref, r.mos, r.group, r.split, r.extra) == (
        "dist/a.png",
        "ref/a.png",
        55.5,
        "a",
        "train",
        {"dist_type": "jpeg"},
    )
    nohead = tmp_path / "nr"
    touch(nohead, "b.png")
    write(nohead, "scores.csv", "b.png,blur,12\n")
    res = convert("generic_csv", nohead)
    assert res.records[0].path == "b.png" and res.records[0].ref is None and res.records[0].mos == 12


def test_root_rebases_paths_and_manifest_roundtrip(tmp_path):
    ds = tmp_path / "datasets" / "kadid"
    write(ds, "dmos.csv", "dist_img,ref_img,dmos,var\nI01_01_01.png,I01.png,4.57,0.496\n")
    touch(ds, "images/I01_01_01.png", "images/I01.png")
    res = convert("kadid10k", ds, root=tmp_path / "datasets")
    assert (
        res.records[0].path == "kadid/images/I01_01_01.png" and res.records[0].ref == "kadid/images/I01.png"
    )
    out = tmp_path / "m.jsonl"
    write_manifest(res.records, out)
    back = read_manifest(out)
    assert back[0].path == "kadid/images/I01_01_01.png" and back[0].extra["dist_level"] == 1
    with pytest.raises(ConvertError, match="does not contain"):
        convert("kadid10k", ds, root=tmp_path / "elsewhere")


def test_wrong_folder_names_the_expected_file(tmp_path):
    with pytest.raises(ConvertError, match="dmos.csv"):
        convert("kadid10k", tmp_path)


def test_cli_convert_exit_status_and_csv_output(tmp_path, capsys):
    from qualitas.cli.main import main

    write(
        tmp_path,
        "dmos.csv",
        "dist_img,ref_img,dmos,var\nI01_01_01.png,I01.png,4.57,0.496\nI02_01_01.png,I02.png,3.0,0.1\n",
    )
    touch(tmp_path, "images/I01_01_01.png", "images/I01.png")
    out = tmp_path / "m.jsonl"
    assert main(["data", "convert", "kadid10k", str(tmp_path), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "1 row(s) name missing files" in err and "images/I02_01_01.png" in err
    assert len(read_manifest(out)) == 2  # kept, not dropped
    assert (
        main(
            ["data", "convert", "kadid10k", str(tmp_path), "--out", str(tmp_path / "m.csv"), "--skip-missing"]
        )
        == 0
    )
    rows = read_manifest(tmp_path / "m.csv")
    assert [r.path for r in rows] == ["images/I01_01_01.png"] and rows[0].std == pytest.approx(0.496**0.5)
    assert main(["data", "convert", "kadid10", str(tmp_path), "--out", str(out)]) == 2


def test_label_paths_escaping_the_root_are_reported(tmp_path):
    ds = tmp_path / "ds"
    touch(tmp_path, "secret.png")
    write(ds, "label.txt", "../secret.png,3.0\n")
    res = convert("rankiqa", ds)
    assert res.missing_rows == 1 and "outside the root" in res.missing_examples[0]
    assert convert("rankiqa", ds, skip_missing=True).records == []
