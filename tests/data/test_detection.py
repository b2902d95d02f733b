"""Detection annotations: COCO / VOC / YOLO readers on fixtures in each official layout,
exact round trips, checks and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from qualitas.cli.main import main
from qualitas.data.detection import (
    AnnotationError,
    Box,
    DetectionSet,
    DetImage,
    check_detection,
    read_coco,
    read_voc,
    read_yolo,
    write_coco,
    write_voc,
    write_yolo,
)


def _jpg(path: Path, w: int, h: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (w, h), (90, 120, 30)).save(path)


@pytest.fixture
def coco_file(tmp_path: Path) -> Path:
    """A COCO person-keypoints file as the official release writes it (xywh, 1-based skeleton)."""
    _jpg(tmp_path / "images/000000000139.jpg", 64, 48)
    _jpg(tmp_path / "images/000000000285.jpg", 40, 40)
    doc = {
        "info": {"description": "fixture"},
        "images": [
            {"id": 139, "file_name": "000000000139.jpg", "width": 64, "height": 48},
            {"id": 285, "file_name": "000000000285.jpg", "width": 40, "height": 40},
        ],
        "annotations": [
            {
                "id": 1,
                "image_id": 139,
                "category_id": 1,
                "bbox": [10, 5, 20, 30],
                "area": 600,
                "iscrowd": 0,
                "num_keypoints": 2,
                "keypoints": [12, 8, 2, 25, 30, 1, 0, 0, 0],
            },
            {"id": 2, "image_id": 139, "category_id": 3, "bbox": [0, 0, 64, 10], "area": 640, "iscrowd": 1},
        ],
        "categories": [
            {
                "id": 1,
                "name": "person",
                "supercategory": "person",
                "keypoints": ["nose", "hip", "knee"],
                "skeleton": [[1, 2], [2, 3]],
            },
            {"id": 3, "name": "car", "supercategory": "vehicle"},
        ],
    }
    path = tmp_path / "annotations/person_keypoints.json"
    path.parent.mkdir()
    path.write_text(json.dumps(doc))
    return path


def test_read_coco_official_layout(coco_file: Path) -> None:
    ds = read_coco(coco_file)
    assert ds.categories == {1: "person", 3: "car"}
    assert ds.keypoint_names == ("nose", "hip", "knee") and ds.skeleton == ((1, 2), (2, 3))
    im = ds.images[0]
    assert (im.file, im.width, im.height, im.id) == ("000000000139.jpg", 64, 48, 139)
    person, crowd = im.boxes
    assert (person.x1, person.y1, person.x2, person.y2) == (10, 5, 30, 35)
    assert person.keypoints == (12, 8, 2, 25, 30, 1, 0, 0, 0) and not person.iscrowd
    assert crowd.iscrowd and crowd.category == 3
    assert ds.images[1].boxes == ()  # an image without boxes is allowed


VOC_XML = """<annotation>
\t<folder>VOC2007</folder>
\t<filename>000005.jpg</filename>
\t<source><database>The VOC2007 Database</database></source>
\t<size><width>50</width><height>40</height><depth>3</depth></size>
\t<segmented>0</segmented>
\t<object>
\t\t<name>chair</name><pose>Rear</pose><truncated>0</truncated><difficult>0</difficult>
\t\t<bndbox><xmin>11</xmin><ymin>6</ymin><xmax>30</xmax><ymax>35</ymax></bndbox>
\t</object>
\t<object>
\t\t<name>person</name><pose>Unspecified</pose><truncated>1</truncated><difficult>1</difficult>
\t\t<bndbox><xmin>1</xmin><ymin>1</ymin><xmax>50</xmax><ymax>40</ymax></bndbox>
\t</object>
</annotation>
"""


@pytest.fixture
def voc_dir(tmp_path: Path) -> Path:
    root = tmp_path / "VOC2007"
    (root / "Annotations").mkdir(parents=True)
    (root / "Annotations/000005.xml").write_text(VOC_XML)
    (root / "ImageSets/Main").mkdir(parents=True)
    (root / "ImageSets/Main/trainval.txt").write_text("000005\n")
    _jpg(root / "JPEGImages/000005.jpg", 50, 40)
    return root


def test_read_voc_devkit_layout_one_based_inclusive(voc_dir: Path) -> None:
    ds = read_voc(voc_dir, split="trainval")
    assert ds.categories == {1: "chair", 2: "person"}
    im = ds.images[0]
    assert im.file == "JPEGImages/000005.jpg" and (im.width, im.height) == (50, 40)
    chair, person = im.boxes
    # devkit: pixel i is [i-1, i]; xmin 11..xmax 30 covers [10, 30]: 20 pixels wide
    assert (chair.x1, chair.y1, chair.x2, chair.y2) == (10, 5, 30, 35)
    assert (person.x1, person.y1, person.x2, person.y2) == (0, 0, 50, 40) and person.difficult
    assert check_detection(ds, voc_dir) == []


@pytest.fixture
def yolo_dir(tmp_path: Path) -> Path:
    root = tmp_path / "yolo"
    _jpg(root / "images/train/a.jpg", 100, 50)
    _jpg(root / "images/train/b.png", 20, 20)
    (root / "labels/train").mkdir(parents=True)
    # Ultralytics layout: class cx cy w h, normalised; b.png has no label file (no boxes)
    (root / "labels/train/a.txt").write_text("0 0.5 0.5 0.2 0.4\n1 0.1 0.1 0.2 0.2\n")
    (root / "classes.txt").write_text("car\nperson\n")
    return root


def test_read_yolo_ultralytics_layout(yolo_dir: Path) -> None:
    ds = read_yolo(yolo_dir / "images/train", classes=yolo_dir / "classes.txt")
    assert ds.categories == {1: "car", 2: "person"}
    a, b = ds.images
    assert (a.file, a.width, a.height) == ("a.jpg", 100, 50) and b.boxes == ()
    car, person = a.boxes
    assert (car.x1, car.y1, car.x2, car.y2, car.category) == (40, 15, 60, 35, 1)
    assert (person.x1, person.y1, person.x2, person.y2, person.category) == (0, 0, 20, 10, 2)


def _sample_set() -> DetectionSet:
    return DetectionSet(
        images=[
            DetImage(
                "a.jpg",
                64,
                48,
                (
                    Box(3, 4, 20, 30, 1),
                    Box(0, 0, 64, 48, 2, difficult=True),
                    Box(5, 5, 9, 9, 2, iscrowd=True),
                ),
                1,
            ),
            DetImage("b.jpg", 33, 17, (), 2),
            DetImage("c.jpg", 7, 9, (Box(1, 2, 6, 9, 1),), 3),
        ],
        categories={1: "car", 2: "person"},
    )


def _boxes(ds: DetectionSet, flags: bool = True) -> list:
    return [
        (
            Path(im.file).name,
            im.width,
            im.height,
            [
                (b.x1, b.y1, b.x2, b.y2, ds.categories[b.category])
                + ((b.iscrowd, b.difficult) if flags else ())
                for b in im.boxes
            ],
        )
        for im in ds.images
    ]


def test_round_trips_are_exact(tmp_path: Path) -> None:
    ds = _sample_set()
    # COCO <-> VOC keeps both flags
    voc = read_voc(write_voc(read_coco(write_coco(ds, tmp_path / "c.json")), tmp_path / "voc"))
    assert _boxes(voc) == _boxes(ds)
    back = read_coco(write_coco(voc, tmp_path / "c2.json"))
    assert _boxes(back) == _boxes(ds)
    # YOLO (needs the images for their sizes) holds no flags; the boxes come back exactly
    for im in ds.images:
        _jpg(tmp_path / "yolo/images" / im.file, im.width, im.height)
    out, dropped = write_yolo(ds, tmp_path / "yolo")
    assert dropped == 2
    yolo = read_yolo(tmp_path / "yolo/images", classes=out / "classes.txt")
    assert _boxes(yolo, flags=False) == _boxes(ds, flags=False)
    assert _boxes(read_voc(write_voc(yolo, tmp_path / "voc2")), flags=False) == _boxes(ds, flags=False)


def test_check_finds_every_problem(tmp_path: Path) -> None:
    _jpg(tmp_path / "a.jpg", 64, 48)
    _jpg(tmp_path / "wrong.jpg", 10, 10)
    ds = DetectionSet(
        images=[
            DetImage("a.jpg", 64, 48, (Box(60, 40, 80, 60, 1), Box(5, 5, 5, 9, 1), Box(1, 1, 4, 4, 9))),
            DetImage("wrong.jpg", 64, 48),
            DetImage("gone.jpg", 64, 48),
            DetImage("../escape.jpg", 64, 48),
        ],
        categories={1: "car"},
    )
    kinds = sorted((p.kind, p.file) for p in check_detection(ds, tmp_path))
    assert kinds == [
        ("category", "a.jpg"),
        ("degenerate", "a.jpg"),
        ("missing", "../escape.jpg"),
        ("missing", "gone.jpg"),
        ("outside", "a.jpg"),
        ("size", "wrong.jpg"),
    ]


@pytest.mark.parametrize(
    "label, message",
    [
        ("5 0.5 0.5 0.1 0.1\n", "a.txt:1: class 5 is outside 0..1"),
        ("0 0.5 0.5 0.1\n", "a.txt:1: expected 'class cx cy w h"),
        ("0 0.5 0.5 0.1 0.1\n0 x 0.5 0.1 0.1\n", "a.txt:2: not numbers"),
    ],
)
def test_yolo_bad_lines_name_file_and_line(yolo_dir: Path, label: str, message: str) -> None:
    (yolo_dir / "labels/train/a.txt").write_text(label)
    with pytest.raises(AnnotationError, match=message.replace("(", r"\(").replace(".", r"\.")):
        read_yolo(yolo_dir / "images/train", classes=yolo_dir / "classes.txt")


def test_bad_files_one_line_errors(tmp_path: Path, voc_dir: Path) -> None:
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(AnnotationError, match="bad.json: not a COCO JSON file"):
        read_coco(tmp_path / "bad.json")
    with pytest.raises(AnnotationError, match="no such annotation file"):
        read_coco(tmp_path / "missing.json")
    (tmp_path / "orphan.json").write_text(
        json.dumps({"images": [], "annotations": [{"image_id": 4, "category_id": 1, "bbox": [0, 0, 1, 1]}]})
    )
    with pytest.raises(AnnotationError, match="not in 'images'"):
        read_coco(tmp_path / "orphan.json")
    (voc_dir / "Annotations/000005.xml").write_text(VOC_XML.replace("<xmin>11</xmin>", "<xmin>eleven</xmin>"))
    with pytest.raises(AnnotationError, match=r"000005.xml: <xmin> is 'eleven', not a number"):
        read_voc(voc_dir)
    bomb = '<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]><annotation>&b;</annotation>'
    (voc_dir / "Annotations/000005.xml").write_text(bomb)
    with pytest.raises(AnnotationError, match="not a VOC XML file"):
        read_voc(voc_dir)
    (tmp_path / "empty.txt").write_text("\n")
    (tmp_path / "imgs").mkdir()
    with pytest.raises(AnnotationError, match="classes file is empty"):
        read_yolo(tmp_path / "imgs", classes=tmp_path / "empty.txt")


def test_cli_convert_and_check(tmp_path: Path, voc_dir: Path, capsys) -> None:
    out = tmp_path / "coco.json"
    assert main(["data", "convert", "voc", str(voc_dir), "--to", "coco", "--out", str(out)]) == 0
    assert "voc -> coco: 1 images, 2 boxes, 2 categories" in capsys.readouterr().out
    assert read_coco(out).images[0].boxes[0].x1 == 10
    assert main(["data", "check", str(out), "--boxes", "coco", "--root", str(voc_dir)]) == 0
    assert "no problems found" in capsys.readouterr().out
    doc = json.loads(out.read_text())
    doc["annotations"][0]["bbox"] = [40, 30, 30, 30]  # leaves the 50x40 image
    out.write_text(json.dumps(doc))
    assert main(["data", "check", str(out), "--boxes", "coco", "--root", str(voc_dir)]) == 1
    assert (
        "outside: JPEGImages/000005.jpg box 0: box (40, 30, 70, 60) leaves the 50x40 image"
        in capsys.readouterr().out
    )
    assert (
        main(["data", "convert", "koniq10k", str(voc_dir), "--to", "yolo", "--out", str(tmp_path / "y")]) == 2
    )
    assert "FORMAT must be one of coco, voc, yolo" in capsys.readouterr().err
