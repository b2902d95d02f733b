"""Every format reader on fixtures in the official layouts, and one-line errors naming the
file (and line) for bad inputs."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from qualitas.data.datasets import DataError
from qualitas.data.vision import (
    ClassificationDataset,
    SegmentationDataset,
    Sizing,
    balanced_weights,
    read_class_list,
    read_class_names,
    read_mask,
    read_palette,
    read_seg_list,
    scan_class_folders,
    scan_seg_folders,
    segmentation_transform,
)


def _img(path, h=8, w=8, value=100):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((h, w, 3), value, np.uint8)).save(path)


def _mask(path, arr):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(arr, np.uint8), mode="L").save(path)


def test_class_folders(tmp_path):
    for c, n in (("cat", 2), ("dog", 1)):
        for i in range(n):
            _img(tmp_path / c / f"{i}.jpg")
    (tmp_path / "cat" / "notes.txt").write_text("not an image")
    d = scan_class_folders(tmp_path)
    assert d.classes == ["cat", "dog"] and [s.labels for s in d.samples] == [(0,), (0,), (1,)]
    w = balanced_weights(d.samples, 2)
    assert w == [0.5, 0.5, 1.0]
    with pytest.raises(DataError, match="folder 'dog' is not one of the 1 class names"):
        scan_class_folders(tmp_path, ["cat"])


def test_list_with_class_names_indices_and_names(tmp_path):
    _img(tmp_path / "images" / "a.jpg")
    _img(tmp_path / "images" / "b.jpg")
    (tmp_path / "names.txt").write_text("cat\ndog\n")
    (tmp_path / "train.txt").write_text("# comment\nimages/a.jpg 1\n\nimages/b.jpg cat\n")
    names = read_class_names(tmp_path / "names.txt")
    d = read_class_list(tmp_path / "train.txt", names)
    assert [s.labels for s in d.samples] == [(1,), (0,)] and d.classes == ["cat", "dog"]
    ds = ClassificationDataset(d.samples, 2)
    assert ds[0]["target"].item() == 1 and ds[0]["input"].shape == (3, 8, 8)
    assert read_class_names(["a", "b"]) == ["a", "b"]
    (tmp_path / "idx.txt").write_text("0 cat\n1 dog\n")
    assert read_class_names(tmp_path / "idx.txt") == ["cat", "dog"]


def test_multilabel_list(tmp_path):
    _img(tmp_path / "x.png")
    (tmp_path / "ml.txt").write_text("x.png 0 2\nx.png 1,2\n")
    d = read_class_list(tmp_path / "ml.txt", ["a", "b", "c"], multi_label=True)
    assert [s.labels for s in d.samples] == [(0, 2), (1, 2)]
    y = ClassificationDataset(d.samples, 3, multi_label=True)[0]["target"]
    assert y.tolist() == [1.0, 0.0, 1.0]


@pytest.mark.parametrize(
    ("text", "names", "message"),
    [
        ("missing.jpg 0\n", ["a", "b"], r"train\.txt:1: image not found: missing\.jpg"),
        ("a.jpg 0\na.jpg 5\n", ["a", "b"], r"train\.txt:2: label 5 out of range \(0\.\.1, 2 classes\)"),
        ("a.jpg dgo\n", ["cat", "dog"], r"train\.txt:1: unknown label 'dgo' \(did you mean 'dog'\?\)"),
        ("a.jpg\n", ["a", "b"], r"train\.txt:1: expected 'path label'"),
        ("# nothing\n\n", ["a", "b"], r"train\.txt: empty list"),
        (
            "../outside.jpg 0\n",
            ["a", "b"],
            r"train\.txt:1: path '\.\./outside\.jpg' leaves the dataset folder",
        ),
    ],
)
def test_list_errors_name_file_and_line(tmp_path, text, names, message):
    _img(tmp_path / "a.jpg")
    (tmp_path / "train.txt").write_text(text)
    with pytest.raises(DataError, match=message) as err:
        read_class_list(tmp_path / "train.txt", names)
    assert "\n" not in str(err.value)


def test_missing_list_file_and_bad_class_names(tmp_path):
    with pytest.raises(DataError, match=r"nope\.txt: file not found"):
        read_class_list(tmp_path / "nope.txt", None)
    (tmp_path / "n.txt").write_text("a\nb\na\n")
    with pytest.raises(DataError, match="class name 'a' appears twice"):
        read_class_names(tmp_path / "n.txt")


def test_seg_folders_match_by_stem_and_masks_are_not_interpolated(tmp_path):
    _img(tmp_path / "images" / "p1.jpg", 6, 10)
    m = np.zeros((6, 10), np.uint8)
    m[:, 5:] = 2
    m[0, 0] = 255
    _mask(tmp_path / "masks" / "p1.png", m)
    d = scan_seg_folders(tmp_path)
    assert [s.mask.name for s in d.samples] == ["p1.png"]
    tf = segmentation_transform(Sizing((12, 20), "none"), train=False)
    item = SegmentationDataset(d.samples, 3, transform=tf)[0]
    assert item["input"].shape == (3, 12, 20) and item["target"].shape == (12, 20)
    assert set(item["target"].unique().tolist()) == {0, 2, 255}  # nearest: no blended values
    _img(tmp_path / "images" / "p2.jpg")
    with pytest.raises(DataError, match=r"p2\.jpg: no mask with stem 'p2'"):
        scan_seg_folders(tmp_path)


def test_paddleseg_list_palette_masks_and_errors(tmp_path):
    _img(tmp_path / "origin_images" / "x.jpg", 4, 4)
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[:2] = (128, 0, 0)
    Image.fromarray(rgb).save(tmp_path / "labels_rgb.png")
    _mask(tmp_path / "labels" / "x.png", np.ones((4, 4)))
    (tmp_path / "train.txt").write_text("origin_images/x.jpg labels/x.png\n")
    d = read_seg_list(tmp_path / "train.txt")
    assert d.samples[0].image.name == "x.jpg"
    pal = read_palette([[0, 0, 0], [128, 0, 0]], 2)
    got = read_mask(tmp_path / "labels_rgb.png", palette=pal)
    assert got[:2].tolist() == [[1] * 4] * 2 and got[2:].sum() == 0
    with pytest.raises(DataError, match="RGB mask; give data.palette"):
        read_mask(tmp_path / "labels_rgb.png")
    (tmp_path / "pal.txt").write_text("0 0 0\n300 0 0\n")
    with pytest.raises(DataError, match=r"pal\.txt:2: a colour is three integers"):
        read_palette(tmp_path / "pal.txt", 2)
    (tmp_path / "bad.txt").write_text("origin_images/x.jpg labels/y.png\n")
    with pytest.raises(DataError, match=r"bad\.txt:1: mask not found: labels/y\.png"):
        read_seg_list(tmp_path / "bad.txt")
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(DataError, match=r"empty\.txt: empty list"):
        read_seg_list(tmp_path / "empty.txt")


def test_mask_of_wrong_size_and_out_of_range_values(tmp_path):
    _img(tmp_path / "images" / "a.png", 4, 4)
    _mask(tmp_path / "masks" / "a.png", np.zeros((4, 5)))
    from qualitas.data.vision import check_seg_sizes

    d = scan_seg_folders(tmp_path)
    with pytest.raises(DataError, match=r"a\.png: mask a\.png is 5x4 but image a\.png is 4x4"):
        check_seg_sizes(d.samples)
    _mask(tmp_path / "masks" / "a.png", np.full((4, 4), 7))
    with pytest.raises(DataError, match=r"mask value 7 out of range \(classes 0\.\.2, ignore 255\)"):
        SegmentationDataset(scan_seg_folders(tmp_path).samples, 3)[0]


@pytest.mark.parametrize("augment", ["none", "basic", "color", "timm"])
def test_classification_augmentations_keep_range_and_size(augment):
    import torch

    from qualitas.data.vision import classification_transform

    tf = classification_transform(Sizing((24, 20), augment), train=True)
    y = tf(torch.rand(3, 40, 30))
    assert tuple(y.shape) == (3, 24, 20)  # "none": the evaluation resize
    assert float(y.min()) >= -1e-6 and float(y.max()) <= 1 + 1e-6  # normalisation is inside the model
