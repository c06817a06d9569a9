"""The label-free estimator a registered version carries (`estimator.json`), fitted in the
evaluate stage: the method is `estimator.py`, this is where its data come from."""

from __future__ import annotations

from pathlib import Path

from skintwin.data.dataset import label_path, list_images
from skintwin.errors import SkinTwinError
from skintwin.training.detstats import DetectionStats
from skintwin.training.estimator import Estimator
from skintwin.training.truth import FIGURES, slices, true_figures


def lesion_rate(dataset: Path, splits: tuple[str, ...]) -> float | None:
    """Labelled boxes per image over `splits` of a YOLO dataset (None when it has no
    images): the number of lesions a photo holds, counted on more photos than the
    validation split's few dozen."""
    images = [p for split in splits for p in list_images(Path(dataset) / "images" / split)]
    boxes = 0
    for image in images:
        label = label_path(image)
        text = label.read_text(encoding="utf-8") if label.is_file() else ""
        boxes += sum(1 for line in text.splitlines() if line.strip())
    return round(boxes / len(images), 6) if images else None


def fit_for_version(
    weights, dataset, params, device: str, test, operating_conf: float, imgsz: int,
    min_images: int = 30, runs=None, val=None,
) -> dict:  # fmt: skip
    """The estimator a registered version carries (`estimator.json`): fitted on the
    service's detections on the validation split (`served`), with its estimate beside the
    true value on the test split, overall and per tone group: the baseline a production
    window is compared with. A model too weak to fit one gets {"available": False,
    "reason"} and monitoring says so. `runs` (a `served.ServedRuns`) shares the service's
    passes with the evaluate stage's other steps; `val` (a `validator.Rows`) is the
    validator's run on the validation split when it ran already."""
    from skintwin.training.served import ServedRuns, served_stats
    from skintwin.training.validator import run_val

    dataset, runs = Path(dataset), runs or ServedRuns(imgsz)
    capture = val or run_val(weights, dataset, params, device, split="val")
    truth = true_figures(DetectionStats.from_rows(capture.rows), operating_conf)
    val_images = sorted((dataset / "images" / "val").iterdir())
    served = served_stats(weights, val_images, dataset / "labels" / "val", capture.names,
                          operating_conf, imgsz, runs)  # fmt: skip
    try:
        estimator = Estimator.fit(
            served, capture.names, operating_conf, truth, lesion_rate(dataset, ("train", "val"))
        )
    except SkinTwinError as exc:
        return {"available": False, "reason": str(exc)}
    test_images = [dataset / f for f in test.stats.files]
    served_test = served_stats(weights, test_images, dataset / "labels" / "test",
                               capture.names, operating_conf, imgsz, runs)  # fmt: skip
    baseline = {}
    for name, members in slices(test.groups, min_images).items():
        est = estimator.estimate_stats(served_test.subset(members), operating_conf, n_boot=200)
        baseline[name] = {
            "images": int(members.size),
            "true": true_figures(test.stats.subset(members), operating_conf),
            "estimate": {k: est[k] for k in FIGURES},
        }
    return {"available": True, "operating_conf": operating_conf, "imgsz": imgsz,
            "estimator": estimator.to_dict(), "test": baseline}  # fmt: skip
