"""Per-image detection statistics from Ultralytics' own validator, and metrics over any
subset of images computed with Ultralytics' own `ap_per_class`.

`model.val()` matches detections to ground truth per image (IoU-based, ten thresholds) and
then computes AP over all images at once. We keep its per-image rows (which detection is a
true positive at which IoU, its confidence and class, the image's ground-truth classes), so
that the test split's figures are exactly `yolo val`'s, and so that any slice — a class, a
skin-tone group, a bootstrap resample — is computed the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from skintwin.errors import SkinTwinError

N_IOU = 10  # IoU thresholds 0.50:0.05:0.95, as Ultralytics and COCO


@dataclass(frozen=True)
class DetectionStats:
    """Detections and ground truth of a set of images, flattened, with image indices.

    Detections keep the validator's order; `det_image[i]` is the index (into `files`) of
    the image detection i belongs to, likewise `gt_image` for ground-truth boxes.
    """

    files: tuple[str, ...]
    tp: np.ndarray  # (D, 10) bool: true positive at each IoU threshold
    conf: np.ndarray  # (D,)
    pred_cls: np.ndarray  # (D,) int
    det_image: np.ndarray  # (D,) int
    gt_cls: np.ndarray  # (G,) int
    gt_image: np.ndarray  # (G,) int

    @classmethod
    def from_rows(cls, rows: list[dict]) -> DetectionStats:
        """From the validator's per-image rows: {file, tp, conf, pred_cls, target_cls}."""
        if not rows:
            raise SkinTwinError("no evaluated images: the test split is empty")

        def cat(key: str, dtype, shape=(0,)) -> np.ndarray:
            parts = [np.asarray(r[key], dtype).reshape(-1, *shape[1:]) for r in rows]
            return np.concatenate(parts)

        return cls(
            files=tuple(r["file"] for r in rows),
            tp=cat("tp", bool, (0, N_IOU)),
            conf=cat("conf", float),
            pred_cls=cat("pred_cls", int),
            det_image=np.concatenate(
                [np.full(len(np.asarray(r["conf"])), i, int) for i, r in enumerate(rows)]
            ),
            gt_cls=cat("target_cls", int),
            gt_image=np.concatenate(
                [np.full(len(np.asarray(r["target_cls"])), i, int) for i, r in enumerate(rows)]
            ),
        )

    def __len__(self) -> int:
        return len(self.files)

    def subset(self, images: list[int] | np.ndarray) -> DetectionStats:
        """The stats of some images (indices into `files`), renumbered in that order."""
        images = np.asarray(images, int)
        if images.size == 0:
            raise SkinTwinError("an empty subset of images has no metrics")
        remap = np.full(len(self.files), -1)
        remap[images] = np.arange(len(images))
        det = remap[self.det_image] >= 0
        gt = remap[self.gt_image] >= 0
        order = np.argsort(remap[self.det_image][det], kind="stable")
        return DetectionStats(
            files=tuple(self.files[i] for i in images),
            tp=self.tp[det][order],
            conf=self.conf[det][order],
            pred_cls=self.pred_cls[det][order],
            det_image=remap[self.det_image][det][order],
            gt_cls=self.gt_cls[gt],
            gt_image=remap[self.gt_image][gt],
        )

    def only_class(self, cls: int) -> DetectionStats:
        """The same images, with only class `cls`'s detections and ground truth."""
        gt = self.gt_cls == cls
        return replace(
            self.keep_detections(self.pred_cls == cls),
            gt_cls=self.gt_cls[gt],
            gt_image=self.gt_image[gt],
        )

    def keep_detections(self, keep: np.ndarray) -> DetectionStats:
        """The same images and ground truth, with only the detections where `keep` holds."""
        return replace(
            self,
            tp=self.tp[keep],
            conf=self.conf[keep],
            pred_cls=self.pred_cls[keep],
            det_image=self.det_image[keep],
        )

    def aligned_to(self, files: tuple[str, ...]) -> DetectionStats:
        """The same images in the order of `files` (for paired comparisons)."""
        index = {f: i for i, f in enumerate(self.files)}
        missing = [f for f in files if f not in index]
        if missing or len(files) != len(self.files):
            raise SkinTwinError(
                f"evaluations are not on the same images ({len(missing)} differ): "
                "compare models on one test split"
            )
        return self.subset([index[f] for f in files])

    def same_truth(self, other: DetectionStats) -> bool:
        """Whether `other` (aligned to these files) has the same ground-truth classes."""
        mine = sorted(zip(self.gt_image.tolist(), self.gt_cls.tolist(), strict=True))
        theirs = sorted(zip(other.gt_image.tolist(), other.gt_cls.tolist(), strict=True))
        return mine == theirs

    def summary(self) -> dict:
        """Ultralytics' figures for these images: overall and per class (class id keys).

        Returns:
            {"mAP50", "mAP50-95", "precision", "recall", "classes": {id: {...}},
             "pr_curves": {id: 101 precisions at recall 0..1 (IoU 0.5)}}.
        """
        from ultralytics.utils.metrics import ap_per_class

        # Detections of equal confidence are ranked in the validator's order (a stable sort,
        # as COCO's evaluation and our bootstrap do): `ap_per_class` sorts with NumPy's
        # default, which may order ties either way, and under ties AP depends on the order.
        # Handed rows already in order, it keeps them so.
        order = np.argsort(-self.conf, kind="stable")
        tp, conf, pred_cls = self.tp[order], self.conf[order], self.pred_cls[order]
        out = ap_per_class(tp, conf, pred_cls, self.gt_cls)
        _, _, p, r, _, ap, classes, _, _, _, x, prec = out
        grid = np.linspace(0, 1, 101)
        if len(classes) == 0:
            return {"mAP50": 0.0, "mAP50-95": 0.0, "precision": 0.0, "recall": 0.0,
                    "classes": {}, "pr_curves": {}}  # fmt: skip
        n_inst = np.bincount(self.gt_cls, minlength=int(classes.max()) + 1)
        return {
            "mAP50": float(ap[:, 0].mean()),
            "mAP50-95": float(ap.mean()),
            "precision": float(p.mean()),
            "recall": float(r.mean()),
            "classes": {
                int(c): {
                    "instances": int(n_inst[c]),
                    "mAP50": float(ap[k, 0]),
                    "mAP50-95": float(ap[k].mean()),
                    "precision": float(p[k]),
                    "recall": float(r[k]),
                }
                for k, c in enumerate(classes)
            },
            "pr_curves": {
                int(c): np.interp(grid, x, prec[k]).tolist() for k, c in enumerate(classes)
            },
        }

    def save(self, path: Path, **extra: np.ndarray) -> None:
        """A compressed `.npz` (plus any `extra` arrays a caller keeps beside)."""
        np.savez_compressed(
            path,
            **extra,
            files=np.array(self.files),
            **{k: getattr(self, k) for k in ("tp", "conf", "pred_cls", "det_image")},
            **{k: getattr(self, k) for k in ("gt_cls", "gt_image")},
        )

    @classmethod
    def load(cls, path: Path) -> DetectionStats:
        if not Path(path).is_file():
            raise SkinTwinError(f"{path}: missing; run `dvc repro evaluate` first")
        with np.load(path, allow_pickle=False) as z:
            return cls(
                files=tuple(str(f) for f in z["files"]),
                **{k: z[k] for k in ("tp", "conf", "pred_cls", "det_image", "gt_cls", "gt_image")},
            )
