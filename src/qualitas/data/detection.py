"""Object-detection and keypoint annotations: one typed record, COCO / Pascal VOC / YOLO on disk.

All three formats are read into :class:`DetectionSet` and written back from it, so a
conversion is ``write_<to>(read_<from>(...))`` and every reader is checked once by
:func:`check_detection`.

Coordinates inside qualitas are continuous pixel coordinates, ``(x1, y1, x2, y2)`` with the
image spanning ``[0, W] x [0, H]`` (COCO's convention: ``bbox = [x1, y1, x2 - x1, y2 - y1]``).
Pascal VOC stores 1-based inclusive pixel indices, so a VOC box ``xmin..xmax`` covers
``[xmin - 1, xmax]`` (the devkit's convention: pixel ``i`` is the unit square ``[i - 1, i]``);
YOLO stores ``class cx cy w h`` normalised by the image size, class indices 0-based into a
classes file. Integer-pixel boxes round-trip exactly between all three (YOLO values are
written with 17 significant digits and read back rounded to 1e-6 px).

Flags: COCO ``iscrowd`` and VOC ``difficult`` are kept. COCO has no ``difficult`` field and VOC
no ``iscrowd``: each writer stores the other flag as an extra key/element (``"difficult": 1``
on a COCO annotation, ``<iscrowd>1</iscrowd>`` in a VOC object) that the official tools
ignore, so flags survive COCO <-> VOC. YOLO has neither: the writer reports how many flags it
dropped. Images without boxes are allowed in every format.

Why hand-written: no maintained library reads and writes all three into one typed record
(pycocotools reads COCO only; torchvision's VOC dataset reads VOC only and returns raw dicts);
the formats are small and specified, and each reader is tested against files written in the
official layout. VOC XML is parsed with ``defusedxml`` (annotation files are untrusted input).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from qualitas.data.manifest import ManifestError, atomic_write_text, resolve_under
from qualitas.errors import DependencyError, MediaError, UsageError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
FORMATS = ("coco", "voc", "yolo")


class AnnotationError(UsageError):
    """An annotation file that cannot be read; the message names the file (and line)."""


@dataclass(frozen=True)
class Box:
    """One object: a box in pixels, its category id, flags and optional COCO keypoints.

    ``keypoints`` is COCO's flat ``[x1, y1, v1, x2, y2, v2, ...]`` (v: 0 not labelled,
    1 labelled but not visible, 2 visible); empty when the set has no keypoints.
    """

    x1: float
    y1: float
    x2: float
    y2: float
    category: int
    iscrowd: bool = False
    difficult: bool = False
    keypoints: tuple[float, ...] = ()

    @property
    def width(self) -> float:
        return self.x2 - self.x1

    @property
    def height(self) -> float:
        return self.y2 - self.y1

    @property
    def area(self) -> float:
        return max(0.0, self.width) * max(0.0, self.height)


@dataclass(frozen=True)
class DetImage:
    """One image: its path relative to the image root, its size in pixels and its boxes."""

    file: str
    width: int
    height: int
    boxes: tuple[Box, ...] = ()
    id: int = 0


@dataclass
class DetectionSet:
    """A detection (or keypoint) dataset: images and the categories their boxes use.

    ``categories`` maps category id -> name (COCO ids as they are; VOC/YOLO: 1.. in the order
    of the classes file / first appearance). ``keypoint_names`` and ``skeleton`` (1-based
    index pairs, as COCO) describe keypoint sets; both empty otherwise.
    """

    images: list[DetImage]
    categories: dict[int, str]
    keypoint_names: tuple[str, ...] = ()
    skeleton: tuple[tuple[int, int], ...] = ()
    extra: dict = field(default_factory=dict)

    @property
    def num_boxes(self) -> int:
        return sum(len(im.boxes) for im in self.images)


# ---------------------------------------------------------------- COCO


def read_coco(path: str | os.PathLike) -> DetectionSet:
    """Read a COCO instances or person-keypoints JSON file."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AnnotationError(f"{path}: no such annotation file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise AnnotationError(f"{path}: not a COCO JSON file ({e})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("images"), list):
        raise AnnotationError(f"{path}: not a COCO JSON file (no 'images' list)")
    cats: dict[int, str] = {}
    kp_names: tuple[str, ...] = ()
    skeleton: tuple[tuple[int, int], ...] = ()
    for i, c in enumerate(doc.get("categories") or []):
        try:
            cats[int(c["id"])] = str(c["name"])
        except (KeyError, TypeError, ValueError):
            raise AnnotationError(f"{path}: categories[{i}] needs an integer 'id' and a 'name'") from None
        if c.get("keypoints") and not kp_names:
            kp_names = tuple(str(k) for k in c["keypoints"])
            skeleton = tuple((int(a), int(b)) for a, b in c.get("skeleton") or [])
    boxes: dict[int, list[Box]] = {}
    for i, a in enumerate(doc.get("annotations") or []):
        try:
            x, y, w, h = (float(v) for v in a["bbox"])
            image_id, cat = int(a["image_id"]), int(a["category_id"])
        except (KeyError, TypeError, ValueError):
            raise AnnotationError(
                f"{path}: annotations[{i}] needs 'image_id', 'category_id' and a 4-number 'bbox'"
            ) from None
        kps = tuple(float(v) for v in a.get("keypoints") or ())
        if len(kps) % 3:
            raise AnnotationError(
                f"{path}: annotations[{i}]: keypoints length {len(kps)} is not a multiple of 3"
            )
        boxes.setdefault(image_id, []).append(
            Box(x, y, x + w, y + h, cat, bool(a.get("iscrowd", 0)), bool(a.get("difficult", 0)), kps)
        )
    images = []
    for i, im in enumerate(doc["images"]):
        try:
            image_id = int(im["id"])
            images.append(
                DetImage(
                    str(im["file_name"]),
                    int(im["width"]),
                    int(im["height"]),
                    tuple(boxes.pop(image_id, ())),
                    image_id,
                )
            )
        except (KeyError, TypeError, ValueError):
            raise AnnotationError(
                f"{path}: images[{i}] needs 'id', 'file_name', 'width' and 'height'"
            ) from None
    if boxes:
        orphan = sorted(boxes)[0]
        raise AnnotationError(f"{path}: {len(boxes)} annotated image id(s) not in 'images' (e.g. {orphan})")
    return DetectionSet(images, cats, kp_names, skeleton)


def coco_dict(ds: DetectionSet) -> dict:
    """The COCO JSON document of a set (image ids 1.. where the set has none)."""
    images, anns = [], []
    for n, im in enumerate(ds.images, 1):
        image_id = im.id or n
        images.append({"id": image_id, "file_name": im.file, "width": im.width, "height": im.height})
        for b in im.boxes:
            ann = {
                "id": len(anns) + 1,
                "image_id": image_id,
                "category_id": b.category,
                "bbox": [b.x1, b.y1, b.width, b.height],
                "area": b.area,
                "iscrowd": int(b.iscrowd),
            }
            if b.difficult:
                ann["difficult"] = 1  # not COCO's; kept so VOC -> COCO -> VOC keeps it
            if b.keypoints:
                ann["keypoints"] = list(b.keypoints)
                ann["num_keypoints"] = sum(1 for v in b.keypoints[2::3] if v > 0)
            anns.append(ann)
    cats = []
    for cid, name in sorted(ds.categories.items()):
        c: dict = {"id": cid, "name": name, "supercategory": name}
        if ds.keypoint_names:
            c["keypoints"] = list(ds.keypoint_names)
            c["skeleton"] = [list(p) for p in ds.skeleton]
        cats.append(c)
    return {"images": images, "annotations": anns, "categories": cats}


def write_coco(ds: DetectionSet, path: str | os.PathLike) -> Path:
    """Write ``ds`` as one COCO JSON file (atomically)."""
    path = Path(path)
    atomic_write_text(path, json.dumps(coco_dict(ds)))
    return path


# ---------------------------------------------------------------- Pascal VOC


def _xml_parse(path: Path):
    try:
        from defusedxml import ElementTree
        from defusedxml.common import DefusedXmlException
    except ImportError:  # pragma: no cover - defusedxml is a dependency of the data extra
        raise DependencyError("reading VOC XML needs defusedxml: pip install 'qualitas[data]'") from None
    try:
        return ElementTree.parse(path).getroot()
    except (ElementTree.ParseError, DefusedXmlException) as e:
        raise AnnotationError(f"{path}: not a VOC XML file ({e})") from None


def _voc_text(node, tag: str, path: Path, *, required: bool = True) -> str | None:
    child = node.find(tag)
    if child is None or child.text is None:
        if required:
            raise AnnotationError(f"{path}: <{tag}> missing")
        return None
    return child.text.strip()


def _voc_number(node, tag: str, path: Path) -> float:
    text = _voc_text(node, tag, path)
    try:
        return float(text)
    except ValueError:
        raise AnnotationError(f"{path}: <{tag}> is {text!r}, not a number") from None


def read_voc(
    root: str | os.PathLike, *, split: str | None = None, classes: list[str] | None = None
) -> DetectionSet:
    """Read a Pascal VOC folder (``Annotations/*.xml``, images under ``JPEGImages/``).

    ``split`` reads only the ids listed in ``ImageSets/Main/<split>.txt``. ``classes`` fixes
    the category order (ids 1..); by default names are numbered in order of first appearance.
    Image paths are ``JPEGImages/<filename>`` relative to ``root``.
    """
    root = Path(root)
    ann_dir = root / "Annotations"
    if not ann_dir.is_dir():
        raise AnnotationError(f"{root}: not a VOC folder (no Annotations/)")
    if split is not None:
        ids_file = root / "ImageSets" / "Main" / f"{split}.txt"
        if not ids_file.is_file():
            raise AnnotationError(f"{ids_file}: no such split file")
        files = [
            ann_dir / f"{line.split()[0]}.xml" for line in ids_file.read_text().splitlines() if line.strip()
        ]
    else:
        files = sorted(ann_dir.glob("*.xml"))
    names: dict[str, int] = {c: i for i, c in enumerate(classes or [], 1)}
    images = []
    for n, f in enumerate(files, 1):
        if not f.is_file():
            raise AnnotationError(f"{f}: listed in the split but missing")
        node = _xml_parse(f)
        size = node.find("size")
        if size is None:
            raise AnnotationError(f"{f}: <size> missing")
        w, h = int(_voc_number(size, "width", f)), int(_voc_number(size, "height", f))
        filename = _voc_text(node, "filename", f, required=False) or f"{f.stem}.jpg"
        boxes = []
        for obj in node.findall("object"):
            name = _voc_text(obj, "name", f)
            if name not in names:
                if classes is not None:
                    raise AnnotationError(f"{f}: class {name!r} is not in the classes list")
                names[name] = len(names) + 1
            bb = obj.find("bndbox")
            if bb is None:
                raise AnnotationError(f"{f}: object {name!r} has no <bndbox>")
            xmin, ymin = _voc_number(bb, "xmin", f), _voc_number(bb, "ymin", f)
            xmax, ymax = _voc_number(bb, "xmax", f), _voc_number(bb, "ymax", f)
            flag = {t: (_voc_text(obj, t, f, required=False) or "0") == "1" for t in ("difficult", "iscrowd")}
            boxes.append(
                Box(
                    xmin - 1,
                    ymin - 1,
                    xmax,
                    ymax,
                    names[name],
                    iscrowd=flag["iscrowd"],
                    difficult=flag["difficult"],
                )
            )
        images.append(DetImage(f"JPEGImages/{filename}", w, h, tuple(boxes), n))
    return DetectionSet(images, {i: c for c, i in names.items()})


def _voc_xml(im: DetImage, categories: dict[int, str]) -> str:
    from xml.sax.saxutils import escape  # writing only: no parsing of untrusted input

    def num(v: float) -> str:
        return str(int(v)) if float(v).is_integer() else repr(float(v))

    parts = [
        "<annotation>",
        "  <folder>JPEGImages</folder>",
        f"  <filename>{escape(Path(im.file).name)}</filename>",
        f"  <size><width>{im.width}</width><height>{im.height}</height><depth>3</depth></size>",
        "  <segmented>0</segmented>",
    ]
    for b in im.boxes:
        parts += [
            "  <object>",
            f"    <name>{escape(categories[b.category])}</name>",
            "    <pose>Unspecified</pose>",
            "    <truncated>0</truncated>",
            f"    <difficult>{int(b.difficult)}</difficult>",
        ]
        if b.iscrowd:
            parts.append("    <iscrowd>1</iscrowd>")  # not VOC's; kept so COCO -> VOC -> COCO keeps it
        parts += [
            f"    <bndbox><xmin>{num(b.x1 + 1)}</xmin><ymin>{num(b.y1 + 1)}</ymin>"
            f"<xmax>{num(b.x2)}</xmax><ymax>{num(b.y2)}</ymax></bndbox>",
            "  </object>",
        ]
    parts.append("</annotation>")
    return "\n".join(parts) + "\n"


def write_voc(ds: DetectionSet, out: str | os.PathLike, *, split: str = "trainval") -> Path:
    """Write ``Annotations/<stem>.xml`` per image and ``ImageSets/Main/<split>.txt`` under ``out``.

    Images are not copied; VOC expects them as ``JPEGImages/<filename>``.
    """
    out = Path(out)
    stems = [Path(im.file).stem for im in ds.images]
    if len(set(stems)) != len(stems):
        dup = next(s for s in stems if stems.count(s) > 1)
        raise UsageError(f"VOC needs unique file names: {dup!r} appears more than once")
    for im, stem in zip(ds.images, stems):
        for b in im.boxes:
            if b.category not in ds.categories:
                raise UsageError(f"{im.file}: category id {b.category} has no name")
        atomic_write_text(out / "Annotations" / f"{stem}.xml", _voc_xml(im, ds.categories))
    atomic_write_text(out / "ImageSets" / "Main" / f"{split}.txt", "".join(f"{s}\n" for s in stems))
    return out


# ---------------------------------------------------------------- YOLO


def _image_size(path: Path) -> tuple[int, int]:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return im.size
    except (OSError, UnidentifiedImageError) as e:
        raise MediaError(f"{path}: cannot read the image size ({e})") from None


def read_yolo(
    images: str | os.PathLike,
    *,
    labels: str | os.PathLike | None = None,
    classes: str | os.PathLike,
) -> DetectionSet:
    """Read a YOLO folder: one ``<stem>.txt`` per image (``class cx cy w h`` per line, normalised).

    ``labels`` defaults to the Ultralytics layout (``.../images/...`` -> ``.../labels/...``),
    or the images folder itself. A missing or empty label file means an image without boxes.
    ``classes`` is the names file (one name per line; ids 0.. in the file, 1.. in qualitas).
    Image paths in the set are relative to ``images``; sizes are read from the image headers.
    """
    images, classes = Path(images), Path(classes)
    if not images.is_dir():
        raise AnnotationError(f"{images}: no such image folder")
    if not classes.is_file():
        raise AnnotationError(f"{classes}: no such classes file")
    names = [line.strip() for line in classes.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not names:
        raise AnnotationError(f"{classes}: the classes file is empty")
    if labels is None:
        parts = images.parts
        labels = Path(*[("labels" if p == "images" else p) for p in parts]) if "images" in parts else images
    labels = Path(labels)
    out = []
    files = sorted(p for p in images.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
    for n, f in enumerate(files, 1):
        w, h = _image_size(f)
        rel = f.relative_to(images)
        lab = labels / rel.with_suffix(".txt")
        boxes = []
        if lab.is_file():
            for ln, line in enumerate(lab.read_text(encoding="utf-8").splitlines(), 1):
                fields = line.split()
                if not fields:
                    continue
                if len(fields) < 5 or (len(fields) - 5) % 3:
                    raise AnnotationError(
                        f"{lab}:{ln}: expected 'class cx cy w h [px py v ...]', got {line!r}"
                    )
                try:
                    cls = int(fields[0])
                    cx, cy, bw, bh, *kp = (float(v) for v in fields[1:])
                except ValueError:
                    raise AnnotationError(f"{lab}:{ln}: not numbers: {line!r}") from None
                if not 0 <= cls < len(names):
                    raise AnnotationError(
                        f"{lab}:{ln}: class {cls} is outside 0..{len(names) - 1} of {classes.name}"
                    )
                if not all(math.isfinite(v) for v in (cx, cy, bw, bh, *kp)):
                    raise AnnotationError(f"{lab}:{ln}: not finite: {line!r}")
                x1, x2 = (cx - bw / 2) * w, (cx + bw / 2) * w
                y1, y2 = (cy - bh / 2) * h, (cy + bh / 2) * h
                kps = []
                for i in range(0, len(kp), 3):
                    kps += [round(kp[i] * w, 6), round(kp[i + 1] * h, 6), kp[i + 2]]
                boxes.append(
                    Box(round(x1, 6), round(y1, 6), round(x2, 6), round(y2, 6), cls + 1, keypoints=tuple(kps))
                )
        out.append(DetImage(rel.as_posix(), w, h, tuple(boxes), n))
    return DetectionSet(out, {i + 1: c for i, c in enumerate(names)})


def write_yolo(ds: DetectionSet, out: str | os.PathLike) -> tuple[Path, int]:
    """Write ``labels/<path>.txt`` per image and ``classes.txt`` under ``out``.

    Returns the folder and how many crowd/difficult flags were dropped (YOLO has no field
    for them). Category ids are renumbered 0.. in sorted id order.
    """
    out = Path(out)
    order = sorted(ds.categories)
    index = {cid: i for i, cid in enumerate(order)}
    dropped = 0
    g = ".17g"  # lossless float round trip
    for im in ds.images:
        lines = []
        for b in im.boxes:
            if b.category not in index:
                raise UsageError(f"{im.file}: category id {b.category} has no name")
            dropped += int(b.iscrowd) + int(b.difficult)
            cx, cy = (b.x1 + b.x2) / 2 / im.width, (b.y1 + b.y2) / 2 / im.height
            vals = [cx, cy, b.width / im.width, b.height / im.height]
            for i in range(0, len(b.keypoints), 3):
                vals += [b.keypoints[i] / im.width, b.keypoints[i + 1] / im.height, b.keypoints[i + 2]]
            lines.append(" ".join([str(index[b.category]), *(format(v, g) for v in vals)]))
        atomic_write_text(
            out / "labels" / Path(im.file).with_suffix(".txt"), "".join(f"{ln}\n" for ln in lines)
        )
    atomic_write_text(out / "classes.txt", "".join(f"{ds.categories[c]}\n" for c in order))
    return out, dropped


# ---------------------------------------------------------------- checks


@dataclass(frozen=True)
class DetectionProblem:
    """One problem: its kind, the image file (and box index) and a one-line message."""

    kind: str
    file: str
    message: str
    box: int | None = None


DETECTION_CHECKS = ("missing", "size", "outside", "degenerate", "category", "keypoints", "duplicate")


def check_detection(
    ds: DetectionSet, root: str | os.PathLike | None = None, *, read_sizes: bool = True
) -> list[DetectionProblem]:
    """Every problem of a set (all images are checked; nothing stops at the first).

    ``missing``: the image file does not exist under ``root`` (or escapes it); ``size``: the
    header's size differs from the annotation's; ``outside``: a box leaves the image by more
    than half a pixel; ``degenerate``: width or height <= 0; ``category``: an id with no
    name; ``keypoints``: a count that does not match the set's keypoint names, or a visible
    keypoint outside the image; ``duplicate``: a file listed twice.
    """
    problems: list[DetectionProblem] = []
    seen: set[str] = set()
    k = len(ds.keypoint_names)
    for im in ds.images:
        if im.file in seen:
            problems.append(DetectionProblem("duplicate", im.file, "listed more than once"))
        seen.add(im.file)
        if root is not None:
            try:
                path = resolve_under(Path(root), im.file)
            except ManifestError as e:
                problems.append(DetectionProblem("missing", im.file, str(e)))
                path = None
            if path is not None and not path.is_file():
                problems.append(DetectionProblem("missing", im.file, f"no such image under {root}"))
            elif path is not None and read_sizes:
                try:
                    size = _image_size(path)
                except MediaError as e:
                    problems.append(DetectionProblem("missing", im.file, str(e)))
                else:
                    if size != (im.width, im.height):
                        problems.append(
                            DetectionProblem(
                                "size",
                                im.file,
                                f"image is {size[0]}x{size[1]}, annotation says {im.width}x{im.height}",
                            )
                        )
        for i, b in enumerate(im.boxes):
            if b.category not in ds.categories:
                problems.append(
                    DetectionProblem(
                        "category", im.file, f"category id {b.category} is not in the categories", i
                    )
                )
            if not (b.width > 0 and b.height > 0):
                problems.append(DetectionProblem("degenerate", im.file, f"box {_fmt(b)} has no area", i))
            if b.x1 < -0.5 or b.y1 < -0.5 or b.x2 > im.width + 0.5 or b.y2 > im.height + 0.5:
                problems.append(
                    DetectionProblem(
                        "outside", im.file, f"box {_fmt(b)} leaves the {im.width}x{im.height} image", i
                    )
                )
            if b.keypoints:
                if k and len(b.keypoints) != 3 * k:
                    problems.append(
                        DetectionProblem(
                            "keypoints", im.file, f"{len(b.keypoints) // 3} keypoints, the set names {k}", i
                        )
                    )
                for j in range(0, len(b.keypoints), 3):
                    x, y, v = b.keypoints[j : j + 3]
                    if v > 0 and not (-0.5 <= x <= im.width + 0.5 and -0.5 <= y <= im.height + 0.5):
                        problems.append(
                            DetectionProblem(
                                "keypoints",
                                im.file,
                                f"keypoint {j // 3} at ({x:g}, {y:g}) is outside the image",
                                i,
                            )
                        )
    return problems


def _fmt(b: Box) -> str:
    return f"({b.x1:g}, {b.y1:g}, {b.x2:g}, {b.y2:g})"


# ---------------------------------------------------------------- reading by name


def read_detection(
    fmt: str, src: str | os.PathLike, *, classes: str | os.PathLike | None = None, split: str | None = None
) -> DetectionSet:
    """Read ``src`` in ``fmt`` (``coco``: the JSON file; ``voc``: the VOC folder; ``yolo``: the images folder)."""
    if fmt == "coco":
        return read_coco(src)
    if fmt == "voc":
        names = None
        if classes is not None:
            names = [
                ln.strip() for ln in Path(classes).read_text(encoding="utf-8").splitlines() if ln.strip()
            ]
        return read_voc(src, split=split, classes=names)
    if fmt == "yolo":
        if classes is None:
            cand = [
                Path(src).parent / "classes.txt",
                Path(src) / "classes.txt",
                Path(src).parent.parent / "classes.txt",
            ]
            found = next((c for c in cand if c.is_file()), None)
            if found is None:
                raise UsageError(f"{src}: YOLO needs --classes (no classes.txt beside the images)")
            classes = found
        return read_yolo(src, classes=classes)
    raise UsageError(f"unknown detection format {fmt!r} (choose from {', '.join(FORMATS)})")


def write_detection(ds: DetectionSet, fmt: str, out: str | os.PathLike) -> tuple[Path, int]:
    """Write ``ds`` in ``fmt``; returns where and how many flags the format could not hold."""
    if fmt == "coco":
        out = Path(out)
        if out.suffix != ".json":
            out = out / "annotations.json"
        return write_coco(ds, out), 0
    if fmt == "voc":
        return write_voc(ds, out), 0
    if fmt == "yolo":
        return write_yolo(ds, out)
    raise UsageError(f"unknown detection format {fmt!r} (choose from {', '.join(FORMATS)})")


def with_files_under(ds: DetectionSet, prefix: str) -> DetectionSet:
    """The same set with every image path prefixed (e.g. to make paths relative to a common root)."""
    return replace(ds, images=[replace(im, file=f"{prefix.rstrip('/')}/{im.file}") for im in ds.images])
