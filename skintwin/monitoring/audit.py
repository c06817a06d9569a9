"""The champion measured where labels came back: a labelled sample of production photos,
its true mAP50, precision and recall overall and per tone group (with an interval), beside
the version's test figures and the label-free estimate of the same photos.

The label-free estimate (`monitoring.performance`) cannot see a tone group's own draw of
lesions, nor a shift that makes the model miss lesions without doubting what it finds
(README, "Performance without labels"); a labelled audit can. The truth is Ultralytics'
validator's, as the version's test figures are, so the two compare; the tone groups and
the estimate are production's own (the service's detections, ITA from the pixels), so the
estimate's error on these photos is measured, not assumed.

A sample is a folder in the YOLO flat layout: `images/` and `labels/` (a photo without a
label file shows no lesion). Nothing is written into it.
"""

from __future__ import annotations

import shutil
import tempfile
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from skintwin.data.dataset import label_path, list_images, parse_labels, shared_labels
from skintwin.errors import SkinTwinError
from skintwin.model.loaded import LoadedModel
from skintwin.monitoring.performance import WATCHED, estimate_window, fall, slice_baseline
from skintwin.monitoring.records import prediction_row
from skintwin.params import Params
from skintwin.training.detstats import DetectionStats
from skintwin.training.truth import FIGURES, slices, true_figures
from skintwin.training.uncertainty import half_spread

Z95 = 1.96
MIN_IMAGES = 10  # a slice's interval is its spread over random halves: a few photos a half


def sample_images(
    folder: Path, names: tuple[str, ...], overflow: float = 0.0, min_images: int = MIN_IMAGES
) -> list[Path]:
    """The sample's photos, its labels checked first as the validate stage checks them
    (`overflow`: its `max_box_overflow`): a bad line fails naming file and line. A sample
    without a labels/ folder, with fewer than `min_images` photos, or with no lesion
    labelled at all fails too: every photo would count as lesion-free, and a model that
    finds lesions would look as if it had fallen to nothing."""
    images_dir, labels_dir = Path(folder) / "images", Path(folder) / "labels"
    if not images_dir.is_dir():
        raise SkinTwinError(f"audit: {folder} has no images/ folder (YOLO: images/, labels/)")
    if not labels_dir.is_dir():
        raise SkinTwinError(f"audit: {folder} has no labels/ folder (YOLO: images/, labels/)")
    images = list_images(images_dir)
    if len(images) < min_images:
        raise SkinTwinError(f"audit: {len(images)} photos in {images_dir}; need {min_images}")
    nested = [p for p in images if p.parent != images_dir]
    if nested:
        raise SkinTwinError(f"audit: {nested[0]}: put the photos directly in {images_dir}")
    shared = shared_labels(images)  # the second photo would be scored on the first's lesions
    if shared:
        raise SkinTwinError(f"audit: {shared[0].file}: {shared[0].message}")
    boxes = 0
    for image in images:
        label = label_path(image)
        if label.is_file():
            found, problems = parse_labels(label, len(names), overflow)
            bad = [p for p in problems if p.severity == "error"]
            if bad:
                where = f"{bad[0].file}:{bad[0].line}" if bad[0].line else bad[0].file
                raise SkinTwinError(f"audit: {where}: {bad[0].message}")
            boxes += len(found)
    if not boxes:
        raise SkinTwinError(f"audit: no lesion is labelled in {labels_dir}: nothing to measure")
    return images


def _validator_truth(model: LoadedModel, images: list[Path], params: Params) -> DetectionStats:
    """Ultralytics' validator on a copy of the sample (its label cache lands in the copy)."""
    from skintwin.training.validator import run_val

    with tempfile.TemporaryDirectory(prefix="skintwin-audit-") as tmp:
        root = Path(tmp)
        (root / "images").mkdir()
        (root / "labels").mkdir()
        for image in images:
            shutil.copy2(image, root / "images" / image.name)
            if label_path(image).is_file():
                shutil.copy2(label_path(image), root / "labels" / f"{image.stem}.txt")
        names = list(model.detector.names.values())
        doc = {"path": str(root), "train": "images", "val": "images", "names": names}
        (root / "data.yaml").write_text(yaml.safe_dump(doc))
        capture = run_val(model.weights, root, params.evaluate, params.train.device, split="val")
    for row in capture.rows:
        row["file"] = Path(row["file"]).name
    return DetectionStats.from_rows(capture.rows)


def _served_rows(model: LoadedModel, images: list[Path], params: Params) -> pd.DataFrame:
    """What production would store for each photo: the service's detections at
    `monitor.conf` and the photo's features (its estimated tone group among them)."""
    from skintwin.data.images import decode_image

    rows = []
    for start in range(0, len(images), 16):
        chunk = images[start : start + 16]
        pixels = [decode_image(p, label=str(p)) for p in chunk]
        preds = model.predict(pixels, conf=params.monitor.conf, imgsz=params.monitor.imgsz,
                              embed=False)  # fmt: skip
        for path, rgb, pred in zip(chunk, pixels, preds, strict=True):
            rows.append(prediction_row(pred, rgb, model_name=model.name, image_ref=path.name))
    return pd.DataFrame(rows)


def _with_interval(value: float, sd: float | None) -> dict:
    """The value with its 95% interval; [0, 1] when its sampling error is unknown."""
    lo, hi = (0.0, 1.0) if sd is None else np.clip([value - Z95 * sd, value + Z95 * sd], 0, 1)
    return {"value": round(value, 4), "lo": round(float(lo), 4), "hi": round(float(hi), 4)}


def _truth_for_all(model: LoadedModel, images: list[Path], params: Params) -> DetectionStats:
    """The validator's rows, one for every photo: a photo it passes over (Ultralytics skips
    images under 10 pixels a side, or ones it finds corrupt) fails the audit by name, rather
    than leaving the slices a photo short of what the report says it measured."""
    stats = _validator_truth(model, images, params)
    skipped = sorted({p.name for p in images} - set(stats.files))
    if skipped:
        raise SkinTwinError(
            f"audit: {skipped[0]} (and {len(skipped) - 1} more): Ultralytics' validator could "
            "not use it (a side under 10 pixels, or a damaged file); remove it or replace it"
        )
    return stats


def audit_sample(model: LoadedModel, folder: Path, params: Params, min_images: int = 30) -> dict:
    """{"images", "test_available", "estimate_available", "slices": {name: {"images",
    "true", "test", "test_slice", "fall", "estimate", "estimate_error"}}, "falls": [...],
    "no_lesions": [...]}: each slice's true figures (95% interval from the half-sample
    spread), the version's test figures (the slice's own, else the whole test split's:
    `test_slice` says which), how far the truth fell below them, and the label-free estimate
    of the same photos. A fall of more than `monitor.estimate_drop` in mAP50 or recall is
    listed; it is `sure` when the interval's top is still that far below the slice's own
    test figure (compared with the whole split, a group's fall may be the gap it always
    had). A tone group with no lesion labelled has nothing to measure: `no_lesions`."""
    if min_images < MIN_IMAGES:
        raise SkinTwinError(f"audit: min_images {min_images}: need {MIN_IMAGES} or more")
    names = tuple(model.detector.names.values())
    images = sample_images(folder, names, params.validate_.max_box_overflow)
    rows = _served_rows(model, images, params)  # first: a photo that cannot be read fails
    truth_stats = _truth_for_all(model, images, params)
    group_of = dict(zip(rows["image_ref"], rows["tone_group"].astype(str), strict=True))
    groups = tuple(group_of[f] for f in truth_stats.files)
    doc = model.estimator_doc()
    tests = doc.get("test") if doc.get("available") else None
    monitor = params.monitor.model_copy(update={"estimate_min_images": min_images})
    order = {f: i for i, f in enumerate(rows["image_ref"])}
    aligned = rows.iloc[[order[f] for f in truth_stats.files]].reset_index(drop=True)
    estimate = estimate_window(doc, aligned, monitor)
    truth = partial(true_figures, operating_conf=doc.get("operating_conf", params.monitor.conf))
    out, falls, no_lesions = {}, [], []
    for name, members in slices(groups, min_images).items():
        labelled = truth_stats.subset(members)
        if labelled.gt_cls.size == 0:
            no_lesions.append(name)
            continue
        true, sd = truth(labelled), half_spread(labelled, truth)
        entry: dict = {
            "images": int(members.size),
            "true": {f: _with_interval(true[f], sd.get(f)) for f in FIGURES},
            "true_sd": {f: sd.get(f) for f in FIGURES},  # unclipped, for anchoring
        }
        if tests:
            own = name in tests
            test = slice_baseline(tests, name)["true"]
            entry["test"] = {f: round(test[f], 4) for f in FIGURES}
            entry["test_slice"] = name if own else "all"
            entry["fall"] = {f: fall(test[f], true[f]) for f in FIGURES}
            falls += [
                {"slice": name, "figure": f, "images": int(members.size),
                 "fall": entry["fall"][f], "now": true[f], "against": entry["test_slice"],
                 "sure": own and test[f] - entry["true"][f]["hi"] > params.monitor.estimate_drop}
                for f in WATCHED
                if entry["fall"][f] > params.monitor.estimate_drop
            ]  # fmt: skip
        if estimate["available"]:
            est = estimate["slices"][name]
            entry["estimate"] = {f: est[f] for f in FIGURES}
            entry["estimate_error"] = {f: round(est[f]["value"] - true[f], 4) for f in FIGURES}
        out[name] = entry
    return {
        "images": len(images),
        "model": {"name": model.name, "version": model.version},
        "test_available": bool(tests),
        "test_reason": None if tests else doc.get("reason", "the version has no test figures"),
        "estimate_available": estimate["available"],
        "estimate_reason": estimate.get("reason"),
        "slices": out,
        "falls": falls,
        "no_lesions": no_lesions,
    }


def audit_markdown(result: dict) -> str:
    """The audit as a Markdown table (Prefect artifact, `audit.md`)."""
    lines = [
        f"Labelled audit of {result['model']['name']} v{result['model']['version']} on "
        f"{result['images']} photos",
        "",
        "| slice | photos | true mAP50 (95% CI) | true recall (95% CI) | test mAP50; recall "
        "| estimated mAP50; recall |",
        "|---|---|---|---|---|---|",
    ]
    for name, s in result["slices"].items():
        true = [f"{s['true'][f]['value']:.3f} [{s['true'][f]['lo']:.3f}, "
                f"{s['true'][f]['hi']:.3f}]" for f in WATCHED]  # fmt: skip
        test = "; ".join(f"{s['test'][f]:.3f}" for f in WATCHED) if "test" in s else "-"
        est = (
            "; ".join(f"{s['estimate'][f]['value']:.3f}" for f in WATCHED)
            if "estimate" in s
            else "-"
        )
        lines.append(f"| {name} | {s['images']} | {true[0]} | {true[1]} | {test} | {est} |")
    whole_split = [n for n, s in result["slices"].items()
                   if n != "all" and s.get("test_slice") == "all"]  # fmt: skip
    if whole_split:
        lines += ["", "Compared with the whole test split (too few of their photos in it): "
                  + ", ".join(whole_split)]  # fmt: skip
    if result.get("no_lesions"):
        lines += ["", f"No lesion labelled, nothing measured: {', '.join(result['no_lesions'])}"]
    if not result["test_available"]:
        lines += ["", f"No test figures to compare with: {result['test_reason']}"]
    if not result["estimate_available"]:
        lines += ["", f"No label-free estimate: {result['estimate_reason']}"]
    lines += ["", f"Fallen below test: {audit_falls_line(result)}"]
    return "\n".join(lines) + "\n"


def audit_falls_line(result: dict) -> str:
    """e.g. "recall on dark 0.61 (−0.21, sure)"; "none" when nothing fell."""
    return (
        "; ".join(
            f"{f['figure']} on {f['slice']} {f['now']:.2f} (−{f['fall']:.2f}"
            f"{', sure' if f['sure'] else ''})"
            for f in result["falls"]
        )
        or "none"
    )
