"""Evaluate YOLO weights on the test split with Ultralytics' own validator, sliced by class
and skin-tone group, each figure with its image count and a bootstrap interval.

The evaluate stage runs this for the candidate and the promotion gate for the current
champion, so both are measured the same way on the same images, now. Numbers are
`yolo val`'s (same matching, same AP); the per-image rows behind them are kept so that
slices and intervals are computed the same way (`detstats.py`, `uncertainty.py`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from skintwin.errors import SkinTwinError
from skintwin.params import EvaluateParams
from skintwin.training.detstats import DetectionStats
from skintwin.training.uncertainty import bootstrap_interval
from skintwin.training.validator import run_val

HEADLINE = ("mAP50", "mAP50-95", "precision", "recall")


@dataclass(frozen=True)
class Evaluation:
    """Test-split results of one model: overall, per class and per skin-tone group.

    One metric-name scheme everywhere: `metrics.json` (DVC), MLflow metrics and version
    tags all say `test.mAP50`, `test.mAP50_lo`, `test.class.<name>.mAP50`,
    `test.group.<group>.mAP50`. `stats` and `groups` (the per-image rows and each image's
    tone group) travel beside metrics.json, for the gate's paired comparison.
    """

    overall: dict  # {"images", "instances", headline, "<metric>_lo", "<metric>_hi"}
    per_class: dict[str, dict]  # name -> {"instances", "images", headline, interval}
    per_group: dict[str, dict]  # tone group -> {"images", "instances", headline, interval}
    pr_curves: dict[str, list[float]] = field(default_factory=dict, repr=False)
    confusion: list[tuple[str, str]] = field(default_factory=list, repr=False)
    stats: DetectionStats | None = field(default=None, repr=False, compare=False)
    groups: tuple[str, ...] = field(default=(), repr=False, compare=False)

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
    def read(cls, metrics: Path, stats: Path | None = None) -> Evaluation:
        """`metrics.json`, and the per-image rows beside it when `stats` is given."""
        metrics = Path(metrics)
        if not metrics.is_file():
            raise SkinTwinError(f"{metrics}: missing; run `dvc repro evaluate` first")
        evaluation = cls.from_metrics_doc(json.loads(metrics.read_text()), str(metrics))
        if stats is None:
            return evaluation
        detections = DetectionStats.load(stats)
        with np.load(stats, allow_pickle=False) as z:
            groups = tuple(str(g) for g in z["groups"]) if "groups" in z else ()
        if len(groups) != len(detections):
            raise SkinTwinError(
                f"{stats}: {len(groups)} tone groups for {len(detections)} images; "
                "run `dvc repro evaluate` again"
            )
        return cls(**{**evaluation.__dict__, "stats": detections, "groups": groups})

    def save_stats(self, path: Path) -> None:
        """The per-image rows and tone groups, for a later paired comparison."""
        if self.stats is None:
            raise SkinTwinError("this evaluation has no per-image rows to save")
        self.stats.save(path, groups=np.array(self.groups))

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

    def group_images(self) -> dict[str, list[int]]:
        """Image indices (into `stats.files`) of each tone group."""
        out: dict[str, list[int]] = {}
        for i, g in enumerate(self.groups):
            out.setdefault(g, []).append(i)
        return out


def _test_table(dataset: Path) -> pd.DataFrame:
    table = pd.read_parquet(dataset / "reference_features.parquet")
    test = table[table["split"] == "test"]
    if test.empty:
        raise SkinTwinError(f"{dataset}: the test split is empty")
    return test.set_index("file")


def evaluate_weights(
    weights: str | Path,
    dataset: Path,
    params: EvaluateParams,
    metric: str = "mAP50",
    device: str = "cpu",
) -> Evaluation:
    """Metrics of `weights` on `dataset`'s test split, overall, per class and per tone
    group, each with its count and a bootstrap interval on `metric`.

    Args:
        dataset: a preprocess output folder (data.yaml, images/test, reference features).
    """
    test = _test_table(dataset)
    capture = run_val(Path(weights), dataset, params, device)
    names = capture.names
    root = dataset.resolve()
    for row in capture.rows:
        row["file"] = Path(row["file"]).resolve().relative_to(root).as_posix()
    stats = DetectionStats.from_rows(capture.rows)
    missing = set(stats.files) - set(test.index)
    if missing or len(stats) != len(test):
        raise SkinTwinError(f"{dataset}: validator images differ from the test table")
    groups = tuple(str(test.loc[f, "tone_group"]) for f in stats.files)
    ci = {"metric": metric, "n_boot": params.bootstrap, "seed": params.seed, "confidence": 0.95}
    result = summarise(stats, groups, names, ci)
    return Evaluation(
        **{**result.__dict__, "confusion": _confusion_pairs(capture.matrix.matrix, names)}
    )


def summarise(
    stats: DetectionStats, groups: tuple[str, ...], names: tuple[str, ...], ci: dict | None
) -> Evaluation:
    """An Evaluation of per-image rows: overall, per class, per tone group (`groups` gives
    each image's), with intervals when `ci` says how to bootstrap them."""
    whole = stats.summary()
    per_class = {}
    for c, name in enumerate(names):
        if (stats.gt_cls == c).any():
            with_class = int(np.unique(stats.gt_image[stats.gt_cls == c]).size)
            per_class[name] = _scores(stats.only_class(c), ci, whole["classes"][c])
            per_class[name]["images"] = with_class
    per_group = {}
    for group in sorted(set(groups)):
        index = [i for i, g in enumerate(groups) if g == group]
        per_group[group] = _scores(stats.subset(index), ci)
    curves = whole["pr_curves"]
    return Evaluation(
        overall=_scores(stats, ci, whole),
        per_class=per_class,
        per_group=per_group,
        pr_curves={names[c]: v for c, v in curves.items()},
        stats=stats,
        groups=groups,
    )


def _scores(stats: DetectionStats, ci: dict | None, summary: dict | None = None) -> dict:
    """Counts, the headline figures and the interval of the primary metric.

    `summary`: the figures, where they come from more than these rows. A class's come from
    all classes' run, as `yolo val` prints them: its precision and recall at the one
    confidence where the mean F1 over the classes peaks, not at the class's own best.
    """
    summary = summary or stats.summary()
    out = {"images": len(stats), "instances": len(stats.gt_cls)}
    out |= {k: round(summary[k], 5) for k in HEADLINE}
    if ci is None:
        return out
    interval = bootstrap_interval(stats, ci["metric"], ci["n_boot"], ci["seed"], ci["confidence"])
    out |= {f"{ci['metric']}_lo": interval["lo"], f"{ci['metric']}_hi": interval["hi"]}
    return out


def _confusion_pairs(matrix: np.ndarray, names: tuple[str, ...]) -> list[tuple[str, str]]:
    """(actual, predicted) per box, from Ultralytics' matrix ([predicted, true], background
    last) at the confidence 0.25, IoU 0.45 operating point."""
    labels = [*names, "background"]
    pairs = []
    for p, predicted in enumerate(labels):
        for t, actual in enumerate(labels):
            pairs += [(actual, predicted)] * round(float(matrix[p, t]))
    return pairs
