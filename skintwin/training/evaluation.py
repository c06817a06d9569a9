"""Evaluate a YOLO weights file on the test split: overall, per class, per skin-tone group.

Used by the evaluate stage for the candidate and by the promotion gate for the current
champion, so both are measured the same way on the same images, now.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from skintwin.data.dataset import label_path, read_names
from skintwin.errors import SkinTwinError
from skintwin.model.yolo import class_names, load_weights
from skintwin.params import EvaluateParams
from skintwin.training.metrics import ImageMatches, box_iou, match_image, summarise

CM_CONF, CM_IOU = 0.25, 0.45  # operating point for the confusion matrix
HEADLINE = ("mAP50", "mAP50-95", "precision", "recall")


@dataclass(frozen=True)
class Evaluation:
    """Test-split results of one model: overall, per class and per skin-tone group.

    One metric-name scheme everywhere: `metrics.json` (DVC), MLflow metrics and version
    tags all say `test.mAP50`, `test.class.<name>.mAP50`, `test.group.<group>.mAP50`.
    """

    overall: dict  # {"images", "mAP50", "mAP50-95", "precision", "recall"}
    per_class: dict[str, dict]  # name -> {"instances", ...headline}
    per_group: dict[str, dict]  # tone group -> {"images", ...headline}
    pr_curves: dict[str, list[float]] = field(default_factory=dict, repr=False)
    confusion: list[tuple[str, str]] = field(default_factory=list, repr=False)

    def metrics_doc(self) -> dict:
        """The `metrics.json` document (what `dvc metrics show` flattens)."""
        return {"test": {**self.overall, "class": self.per_class, "group": self.per_group}}

    @classmethod
    def from_metrics_doc(cls, doc: dict, source: str = "metrics.json") -> Evaluation:
        try:
            test = dict(doc["test"])
            per_class, per_group = test.pop("class"), test.pop("group")
        except (KeyError, TypeError):
            raise SkinTwinError(
                f"{source}: not a metrics document (no test.class/group)"
            ) from None
        return cls(test, per_class, per_group)

    @classmethod
    def read(cls, path: Path) -> Evaluation:
        path = Path(path)
        if not path.is_file():
            raise SkinTwinError(f"{path}: missing; run `dvc repro evaluate` first")
        return cls.from_metrics_doc(json.loads(path.read_text()), str(path))

    def flat(self) -> dict[str, float]:
        """Every number under its one name: `test.mAP50`, `test.group.dark.images`, ..."""
        out: dict[str, float] = {}

        def walk(prefix: str, node: object) -> None:
            if isinstance(node, dict):
                for k, v in node.items():
                    walk(f"{prefix}.{k}", v)
            elif isinstance(node, int | float) and not isinstance(node, bool):
                out[prefix] = float(node)

        walk("test", self.metrics_doc()["test"])
        return out


def _xywh_to_xyxy(a: np.ndarray) -> np.ndarray:
    return np.concatenate([a[:, :2] - a[:, 2:] / 2, a[:, :2] + a[:, 2:] / 2], axis=1)


def _ground_truth(image: Path) -> tuple[np.ndarray, np.ndarray]:
    lbl = label_path(image)
    if not lbl.exists() or not lbl.read_text().strip():
        return np.zeros((0, 4)), np.zeros(0, int)
    rows = np.loadtxt(lbl, ndmin=2)
    return _xywh_to_xyxy(rows[:, 1:5]), rows[:, 0].astype(int)


def evaluate_weights(
    weights: str | Path, dataset: Path, params: EvaluateParams, device: str = "cpu"
) -> Evaluation:
    """Metrics of `weights` on `dataset`'s test split.

    Args:
        dataset: a preprocess output folder (data.yaml, images/test, reference features).
    """
    _, names = read_names(dataset / "data.yaml")
    table = pd.read_parquet(dataset / "reference_features.parquet")
    test = table[table["split"] == "test"].sort_values("file").reset_index(drop=True)
    if test.empty:
        raise SkinTwinError(f"{dataset}: the test split is empty")
    model = load_weights(weights)
    model_names = class_names(model)
    if model_names != names:
        raise SkinTwinError(
            f"{weights}: model classes {list(model_names)} differ from dataset {list(names)}"
        )
    images = [dataset / f for f in test["file"]]
    matches: list[ImageMatches] = []
    confusion: list[tuple[str, str]] = []
    results = model.predict(
        [str(p) for p in images],
        conf=params.conf,
        iou=params.iou,
        imgsz=params.imgsz,
        device=device,
        max_det=300,
        verbose=False,
        stream=True,
    )
    for image, res in zip(images, results, strict=True):
        gt_xyxy, gt_cls = _ground_truth(image)
        xyxy = res.boxes.xyxyn.cpu().numpy().astype(float)
        cls = res.boxes.cls.cpu().numpy().astype(int)
        conf = res.boxes.conf.cpu().numpy().astype(float)
        matches.append(match_image(xyxy, cls, conf, gt_xyxy, gt_cls))
        confusion.extend(
            _confusion_pairs(xyxy[conf >= CM_CONF], cls[conf >= CM_CONF], gt_xyxy, gt_cls, names)
        )
    overall = summarise(matches, len(names))
    per_group = {}
    for group, rows in test.groupby("tone_group"):
        idx = rows.index.tolist()
        s = summarise([matches[i] for i in idx], len(names))
        per_group[str(group)] = {"images": len(idx), **_headline(s)}
    return Evaluation(
        overall={"images": len(images), **_headline(overall)},
        per_class={names[c]: v for c, v in overall["per_class"].items()},
        per_group=per_group,
        pr_curves={names[c]: v.tolist() for c, v in overall["pr_curves"].items()},
        confusion=confusion,
    )


def _headline(s: dict) -> dict:
    return {k: round(s[k], 5) for k in HEADLINE}


def _confusion_pairs(xyxy, cls, gt_xyxy, gt_cls, names) -> list[tuple[str, str]]:
    """(actual, predicted) per box at the confusion operating point; misses use 'background'."""
    pairs, used = [], set()
    iou = box_iou(gt_xyxy, xyxy)
    for g in range(len(gt_cls)):
        j = int(np.argmax(iou[g])) if iou.shape[1] else -1
        if j >= 0 and iou[g, j] >= CM_IOU and j not in used:
            used.add(j)
            pairs.append((names[gt_cls[g]], names[cls[j]]))
        else:
            pairs.append((names[gt_cls[g]], "background"))
    pairs += [("background", names[cls[j]]) for j in range(len(cls)) if j not in used]
    return pairs
