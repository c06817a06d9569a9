"""Reading YOLO detection datasets: layout discovery, `data.yaml`, and label files.

Accepted layouts (DESIGN: Dataset):
- flat: `images/` + `labels/`;
- split: `images/{train,val,test}` + `labels/{train,val,test}`;
- export: `train/images`, `valid/images`, `test/images` (labels beside), as Roboflow and
  CVAT write them, with split paths in `data.yaml` relative to it (a leading `../` that
  points outside the folder is tolerated, as those exports need).
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import yaml

from skintwin.errors import SkinTwinError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
_SPLIT_KEYS = ("train", "val", "test")
_SPLIT_DIR_NAMES = {"train": ("train",), "val": ("val", "valid", "validation"), "test": ("test",)}


@dataclass(frozen=True)
class Problem:
    """One finding of validation; `line` is 1-based for label files, else None."""

    severity: str  # "error" | "warning"
    rule: str
    file: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{self.severity.upper()} [{self.rule}] {where}: {self.message}"


@dataclass(frozen=True)
class Box:
    cls: int
    cx: float
    cy: float
    w: float
    h: float


@dataclass(frozen=True)
class Layout:
    root: Path
    data_yaml: Path
    names: tuple[str, ...]
    splits: dict[str, Path]  # split name ("all" when flat) -> images folder, each read once
    overlaps: tuple[tuple[str, str], ...] = ()  # (split, the split naming the same folder)


def find_data_yaml(root: Path) -> Path:
    for name in ("data.yaml", "data.yml", "dataset.yaml"):
        if (root / name).is_file():
            return root / name
    raise SkinTwinError(f"{root}: no data.yaml (it must list the class `names`)")


def read_names(data_yaml: Path) -> tuple[dict, tuple[str, ...]]:
    """The parsed `data.yaml` and its class names, in class-id order."""
    try:
        doc = yaml.safe_load(data_yaml.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise SkinTwinError(f"{data_yaml}: not valid YAML: {exc}") from None
    if not isinstance(doc, dict) or "names" not in doc:
        raise SkinTwinError(f"{data_yaml}: missing key 'names' (the list of class names)")
    names = doc["names"]
    if isinstance(names, dict):
        ids = sorted(names)
        if not all(isinstance(i, int) for i in ids) or ids != list(range(len(ids))):
            raise SkinTwinError(f"{data_yaml}: 'names' keys must be the ids 0..N-1, got {ids}")
        names = [names[i] for i in ids]
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise SkinTwinError(f"{data_yaml}: 'names' must be a non-empty list of strings")
    if len(set(names)) != len(names):
        raise SkinTwinError(f"{data_yaml}: 'names' has duplicates: {names}")
    if bad := [n for n in names if not re.fullmatch(r"[\w\- ]+", n)]:  # in metric and tag names
        raise SkinTwinError(f"{data_yaml}: class name {bad[0]!r}: letters, digits, _, - or space")
    if "nc" in doc and str(doc["nc"]) != str(len(names)):  # which is right? Ultralytics refuses
        raise SkinTwinError(f"{data_yaml}: 'nc: {doc['nc']}' but 'names' lists {len(names)}")
    return doc, tuple(names)


def _resolve_split(data_yaml: Path, doc: dict, key: str) -> Path:
    value = doc[key]
    if not isinstance(value, str):
        raise SkinTwinError(f"{data_yaml}: '{key}' must be a folder path, got {value!r}")
    base = data_yaml.parent
    if isinstance(doc.get("path"), str) and doc["path"]:
        base = (base / doc["path"]) if not Path(doc["path"]).is_absolute() else Path(doc["path"])
    candidates = [base / value]
    stripped = value
    while stripped.startswith("../"):
        stripped = stripped[3:]
        candidates.append(data_yaml.parent / stripped)
    # inside the dataset first: Roboflow's `../train/images` means the export's own
    # `train/images`, and a folder of that name beside the export is another dataset
    root = data_yaml.parent.resolve()
    candidates.sort(key=lambda path: root not in (path.resolve(), *path.resolve().parents))
    for path in candidates:
        if path.is_dir():
            return path
    raise SkinTwinError(f"{data_yaml}: '{key}: {value}' does not exist (looked in {base})")


def discover(root: str | Path) -> Layout:
    """Find `data.yaml`, class names and the image folder of every split."""
    root = Path(root)
    if not root.exists():
        raise SkinTwinError(f"{root}: dataset folder does not exist")
    if not root.is_dir():
        raise SkinTwinError(f"{root}: dataset path is not a folder")
    data_yaml = find_data_yaml(root)
    doc, names = read_names(data_yaml)
    declared = [k for k in _SPLIT_KEYS if k in doc and doc[k] is not None]
    splits: dict[str, Path] = {}
    if declared:
        splits = {k: _resolve_split(data_yaml, doc, k) for k in declared}
    elif all((root / "images" / s).is_dir() for s in ("train", "val")):
        splits = {s: root / "images" / s for s in _SPLIT_KEYS if (root / "images" / s).is_dir()}
    elif (root / "images").is_dir():
        splits = {"all": root / "images"}
    else:
        for split, dirnames in _SPLIT_DIR_NAMES.items():
            for d in dirnames:
                if (root / d / "images").is_dir():
                    splits[split] = root / d / "images"
                    break
    if not splits:
        raise SkinTwinError(
            f"{root}: no images found: expected images/, images/<split>/ or <split>/images/"
        )
    seen: dict[Path, str] = {}
    overlaps = []
    for split, folder in list(splits.items()):  # e.g. coco128: train and val in one folder
        if folder.resolve() in seen:
            overlaps.append((split, seen[folder.resolve()]))
            del splits[split]
        else:
            seen[folder.resolve()] = split
    return Layout(root, data_yaml, names, splits, tuple(overlaps))


def list_images(folder: Path) -> list[Path]:
    """Every image under `folder`, sub-folders included; a symlinked sub-folder is read too
    (each real folder once), as Ultralytics reads it: `rglob` skipped it, without a word."""
    found, seen = [], set()
    for where, subdirs, files in os.walk(folder, followlinks=True):
        real = os.path.realpath(where)
        if real in seen:  # a link back up the tree, or a second link to one folder
            subdirs.clear()
            continue
        seen.add(real)
        found += [Path(where, f) for f in files if Path(f).suffix.lower() in IMAGE_SUFFIXES]
    return sorted(found)


def label_path(image: Path) -> Path:
    """YOLO convention: the last `images` folder of the path becomes `labels`, suffix .txt."""
    parts = list(image.parts)
    for i in range(len(parts) - 1, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            return Path(*parts).with_suffix(".txt")
    return image.with_suffix(".txt")


def shared_labels(images: list[Path]) -> list[Problem]:
    """Photos whose one label file is the same (`p0.jpg` and `p0.png`): the second would
    be trained and tested with the first one's lesions."""
    by_label: dict[Path, list[Path]] = defaultdict(list)
    for image in images:
        by_label[label_path(image)].append(image)
    return [
        Problem(
            "error",
            "shared_label",
            str(label),
            "the label file of " + " and ".join(map(str, same)),
        )
        for label, same in sorted(by_label.items())
        if len(same) > 1
    ]


def parse_labels(
    path: Path, n_classes: int, max_overflow: float = 0.0
) -> tuple[list[Box], list[Problem]]:
    """Parse one label file; every bad line becomes a Problem naming file and line."""
    boxes: list[Box] = []
    problems: list[Problem] = []

    def bad(rule: str, line: int, msg: str, severity: str = "error") -> None:
        problems.append(Problem(severity, rule, str(path), msg, line))

    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        return [], [Problem("error", "unreadable_label", str(path), str(exc))]
    seen: set[tuple[str, ...]] = set()
    for n, raw in enumerate(text.splitlines(), start=1):
        fields = tuple(raw.split())
        if not fields:
            continue
        if len(fields) != 5:
            bad("column_count", n, f"expected 5 columns 'class cx cy w h', got {len(fields)}")
            continue
        try:
            cls_f, cx, cy, w, h = (float(f) for f in fields)
        except ValueError:
            bad("not_a_number", n, f"non-numeric value in {raw.strip()!r}")
            continue
        if not cls_f.is_integer() or not 0 <= cls_f < n_classes:
            bad("class_out_of_range", n, f"class id {fields[0]} not in 0..{n_classes - 1}")
            continue
        if not all(0.0 <= v <= 1.0 for v in (cx, cy, w, h)):
            bad("coords_out_of_range", n, f"coordinates {fields[1:]} must be within 0–1")
            continue
        if w <= 0 or h <= 0:
            bad("zero_size_box", n, f"box width/height must be positive, got w={w} h={h}")
            continue
        edge = max(w / 2 - cx, cx + w / 2 - 1, h / 2 - cy, cy + h / 2 - 1)
        if edge > max_overflow:
            bad("box_outside_image", n, f"box extends {edge:.3f} past the image edge")
            continue
        if edge > 0:
            bad("box_outside_image", n, "box slightly past the edge (clipped)", "warning")
        if fields in seen:
            bad("duplicate_label", n, "same box listed twice", "warning")
            continue
        seen.add(fields)
        box = Box(int(cls_f), cx, cy, w, h)
        boxes.append(_clipped(box) if edge > 0 else box)
    return boxes, problems


def _clipped(box: Box) -> Box:
    """The box cut at the image's edges (a box within `max_overflow` past one)."""
    x1, x2 = max(box.cx - box.w / 2, 0.0), min(box.cx + box.w / 2, 1.0)
    y1, y2 = max(box.cy - box.h / 2, 0.0), min(box.cy + box.h / 2, 1.0)
    return Box(box.cls, (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1)
