"""How well the detector does where nobody labels the photos: a label-free estimate of
mAP50, precision and recall from its own calibrated confidences.

Method (calibrated expected counts): on the validation split, at training time, an isotonic
regression maps each class's detection confidence to the probability that the detection
is a true positive at IoU 0.5, and the number of lesions per image is counted. On
unlabelled images each candidate (at or above the confidence `floor`) counts as `p`
expected true positives; the expected number of lesions is the validation rate per image
times the images, shared between classes as their expected true positives, each divided by
the share of that class's lesions the candidates found on validation, imply; precision,
recall and AP follow from those expected counts exactly as Ultralytics computes them from
real ones. Recall's lesion count takes the rate over the training and validation labels
instead (`lesion_rate`): its only unknown is that count, and a few dozen validation photos
set it too low as often as too high. It extends average
thresholded confidence (Garg et al., ICLR 2022) from classification accuracy to a
detector's precision-recall curve; it assumes calibration carries over to the new images,
which a shift can break, so the benchmark measures its error on labelled shifted batches.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np

from skintwin.errors import SkinTwinError
from skintwin.training import class_rows
from skintwin.training.detstats import DetectionStats
from skintwin.training.isotonic import isotonic_knots
from skintwin.training.truth import FIGURES, true_figures
from skintwin.training.uncertainty import ap_rows, half_spread, joined_interval, resamples

FLOOR = 0.01  # candidates below this confidence are ignored (and need not be stored)
_MIN_FIT = 30  # detections of a class needed to calibrate it on its own (else pooled)


@dataclass(frozen=True)
class Estimator:
    """A fitted estimator: JSON-ready, stored with the registered version."""

    names: tuple[str, ...]
    floor: float
    knots: dict[str, tuple[list[float], list[float]]]  # class (or "*"): conf → P(TP)
    per_image: float  # true boxes per image on the validation split
    coverage: float  # share of true boxes some candidate finds on the validation split
    n_images: int  # validation images it was fitted on
    offset: dict[str, float] | None = None  # true − estimated on the validation split
    class_rates: dict[str, tuple[float, float]] | None = None  # class: (per image, coverage)
    offset_sd: dict[str, float] | None = None  # the offset's sampling error (n_images)
    lesion_rate: float | None = None  # true boxes per image, labelled train + val: recall's count

    @classmethod
    def fit(
        cls,
        stats: DetectionStats,
        names: tuple[str, ...],
        floor: float = FLOOR,
        truth: dict | None = None,
        lesion_rate: float | None = None,
    ):
        """Fit on `stats` (the service's detections on labelled images); `truth`, the
        validator's figures on the same images, sets the constant offset (default: what
        `stats` itself says); `lesion_rate`, lesions per image over more labelled images
        than these (the training and validation splits), is recall's lesion count."""
        keep = stats.conf >= floor
        conf, cls_, tp = stats.conf[keep], stats.pred_cls[keep], stats.tp[keep, 0]
        if conf.size < _MIN_FIT:
            raise SkinTwinError(
                f"performance estimator: {conf.size} validation detections ≥ {floor}; "
                f"need {_MIN_FIT} (a larger val split, or a model that detects)"
            )

        def curve(x: np.ndarray, y: np.ndarray) -> tuple[list[float], list[float]]:
            xs, ys = isotonic_knots(x, y)
            return [round(float(v), 6) for v in xs], [round(float(v), 6) for v in ys]

        knots = {"*": curve(conf, tp.astype(float))}
        for k, name in enumerate(names):
            mine = cls_ == k
            if mine.sum() >= _MIN_FIT and 0 < tp[mine].sum() < mine.sum():
                knots[name] = curve(conf[mine], tp[mine].astype(float))
        per_image = round(len(stats.gt_cls) / len(stats), 6)
        coverage = round(float(tp.sum()) / max(1, len(stats.gt_cls)), 6)
        rates = {
            name: (round(float(n) / len(stats), 6), round(float(tp[cls_ == k].sum()) / n, 6))
            for k, name in enumerate(names)
            if (n := int((stats.gt_cls == k).sum()))
        }
        fitted = cls(tuple(names), floor, knots, per_image, coverage, len(stats), None, rates,
                     None, lesion_rate)  # fmt: skip
        # what the method misses on the images it was fitted on (chiefly AP below `floor`,
        # which production never stores) is added back as a constant
        bias = fitted._bias(stats, floor, truth or true_figures(stats, floor))
        offset = {f: round(v, 6) for f, v in bias.items()}
        return replace(fitted, offset=offset, offset_sd=fitted._offset_sd(stats, floor))

    def _bias(self, stats: DetectionStats, floor: float, true: dict) -> dict:
        """True − estimated on labelled `stats`. With a `lesion_rate`, recall's is measured
        told the images' own number of lesions: the offset then corrects the calibration
        only, not how far these few images' lesion count strays from the rate."""
        est = self.estimate_stats(stats, floor, n_boot=1)
        out = {f: true[f] - est[f]["value"] for f in FIGURES}
        if self.lesion_rate is not None:
            own = replace(self, lesion_rate=len(stats.gt_cls) / max(1, len(stats)))
            told = own.estimate_stats(stats, floor, n_boot=1, count="prior")
            out["recall"] = true["recall"] - told["recall"]["value"]
        return out

    def _offset_sd(self, stats: DetectionStats, floor: float) -> dict:
        """The offset's sampling error: the spread of (true − estimated) over random
        halves of these images (a delete-half jackknife: the whole set's own, unscaled)."""

        def offset(half: DetectionStats) -> dict:
            return self._bias(half, floor, true_figures(half, floor))

        return half_spread(stats, offset) or {f: 0.0 for f in FIGURES}

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, doc: dict) -> Estimator:
        knots = {k: (list(v[0]), list(v[1])) for k, v in doc["knots"].items()}
        rates = {k: (float(v[0]), float(v[1])) for k, v in (doc.get("class_rates") or {}).items()}
        return cls(tuple(doc["names"]), float(doc["floor"]), knots, float(doc["per_image"]),
                   float(doc["coverage"]), int(doc["n_images"]), doc.get("offset"),
                   rates or None, doc.get("offset_sd"), doc.get("lesion_rate"))  # fmt: skip

    def p_true(self, conf: np.ndarray, cls_: np.ndarray) -> np.ndarray:
        """Each detection's calibrated probability of being a true positive (IoU 0.5)."""
        out = np.zeros(len(conf))
        for k, name in enumerate(self.names):
            mine = cls_ == k
            x, y = self.knots.get(name, self.knots["*"])
            out[mine] = np.interp(conf[mine], x, y)
        return np.where(conf >= self.floor, out, 0.0)

    def estimate(
        self,
        conf: np.ndarray,
        cls_: np.ndarray,
        det_image: np.ndarray,
        n_images: int,
        operating_conf: float = 0.25,
        n_boot: int = 200,
        seed: int = 0,
        count: str = "max",
    ) -> dict:
        """Estimated {"mAP50", "precision", "recall"} of these unlabelled images, each as
        {"value", "lo", "hi"}, plus "images" and "classes": a bootstrap over the images
        joined with the calibration's own error (`offset_sd`)."""
        keep = conf >= self.floor
        conf, cls_, det_image = conf[keep], cls_[keep], det_image[keep]
        p = self.p_true(conf, cls_)
        weights = np.vstack([np.ones(n_images), resamples(n_images, n_boot, seed)]).astype(
            np.float32
        )  # row 0: the images as they are
        w = weights[:, det_image]
        expected = (w * p).sum(axis=1)  # expected true positives, all classes
        seen = expected / max(self.coverage, 1e-6)  # what the candidates say

        def lesions_at(rate: float, seen: np.ndarray = seen) -> np.ndarray:
            prior = weights.sum(axis=1) * rate
            return {"prior": prior, "candidates": seen, "max": np.maximum(prior, seen)}[count]

        lesions = lesions_at(self.per_image)  # the validation split's rate: AP's axis
        recall_lesions = lesions if self.lesion_rate is None else lesions_at(self.lesion_rate)
        ap, tp_at, n_at, gt, classes = [], [], [], [], {}
        orders = {}  # each present class's candidates, most confident first
        for k in range(len(self.names)):
            mine = np.flatnonzero(cls_ == k)
            if mine.size:
                orders[k] = mine[np.argsort(-conf[mine], kind="stable")]
        w_of = {k: w[:, order] for k, order in orders.items()}
        found = {k: (w_of[k] * p[order]).sum(axis=1) for k, order in orders.items()}
        implied = {k: found[k] / self._coverage(k) for k in orders}  # each class's lesions
        implied_total = np.maximum(sum(implied.values(), np.zeros(len(weights))), 1e-9)
        # each class's own row (a point estimate: the images as they are, row 0): its
        # lesions as its finds imply, the misses as `class_rows.split` says
        first = {k: v[:1] for k, v in implied.items()}
        mix = {k: rate[0] for k, name in enumerate(self.names)
               if (rate := (self.class_rates or {}).get(name))}  # fmt: skip
        own = class_rows.split(lesions_at(self.per_image, implied_total)[:1], first, mix)
        own_gt = own if self.lesion_rate is None else class_rows.split(
            lesions_at(self.lesion_rate, implied_total)[:1], first, mix)  # fmt: skip
        for k, order in orders.items():
            share = implied[k] / implied_total  # the shared count, split as the classes imply
            n_hat = np.maximum(lesions * share, 1e-9)
            ap.append(ap_rows(p[order], w_of[k], n_hat))
            on = order[conf[order] >= operating_conf]
            tp_at.append((w[:, on] * p[on]).sum(axis=1))
            n_at.append(w[:, on].sum(axis=1))
            gt.append(np.maximum(recall_lesions * share, 1e-9))
            classes[self.names[k]] = class_rows.figures(
                ap_rows(p[order], w[:1, order], own[k])[0], tp_at[-1][0], n_at[-1][0],
                own_gt[k][0], self.offset or {},
            )  # fmt: skip
        if not ap:
            zero = {"value": 0.0, "lo": 0.0, "hi": 0.0}
            return {"images": n_images, "classes": {}, "mAP50": zero, "precision": zero,
                    "recall": zero}  # fmt: skip
        with np.errstate(all="ignore"):
            ratio = np.array(tp_at) / np.array(n_at)  # NaN: a class claims nothing there
        claimed = np.isfinite(ratio)
        figures = {  # precision as `true_figures` takes it: 0 where nothing is claimed
            "mAP50": np.mean(ap, axis=0),
            "precision": np.where(claimed, ratio, 0.0).sum(0) / np.maximum(claimed.sum(0), 1),
            "recall": np.mean(np.array(tp_at) / np.array(gt), axis=0),
        }
        out: dict = {"images": n_images, "classes": classes}
        for name, samples in figures.items():
            samples = np.clip(samples + (self.offset or {}).get(name, 0.0), 0.0, 1.0)
            out[name] = joined_interval(samples, (self.offset_sd or {}).get(name, 0.0))
        return out

    def _coverage(self, k: int) -> float:
        """The share of class k's lesions the candidates find, on the validation split (the
        whole split's where the class was not there or never found). The lesion count
        shared by the classes is split by what each class's found lesions imply at its own
        coverage, not by the found lesions alone: those would give every class the same
        recall, and a window whose lesions move to a class the model finds less often would
        be over-stated (the estimate bench's lesion mix: recall +0.095, mAP50 +0.062)."""
        rate = (self.class_rates or {}).get(self.names[k])
        return rate[1] if rate and rate[1] > 0 else self.coverage

    def estimate_stats(self, stats: DetectionStats, operating_conf: float = 0.25, **kw) -> dict:
        """`estimate` on a labelled set's detections, its labels unused (benchmarks)."""
        return self.estimate(
            stats.conf, stats.pred_cls, stats.det_image, len(stats), operating_conf, **kw
        )
