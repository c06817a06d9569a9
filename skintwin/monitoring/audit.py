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

from skintwin.data.dataset import label_path, list_images, parse_labels
from skintwin.errors import SkinTwinError
from skintwin.model.loaded import LoadedModel
from skintwin.monitoring.performance import WATCHED, estimate_window, fall, slice_baseline
from skintwin.monitoring.records import prediction_row
from skintwin.params import Params
from skintwin.training.detstats import DetectionStats
from skintwin.training.truth import FIGURES, slices, true_figures
from skintwin.training.uncertainty import half_spread

Z95 = 1.96


def sample_images(folder: Path, names: tuple[str, ...], overflow: float = 0.0) -> list[Path]:
    """The sample's photos, its labels checked first as the validate stage checks them
    (`overflow`: its `max_box_overflow`): a bad line fails naming file and line."""
    images_dir = Path(folder) / "images"
    if not images_dir.is_dir():
        raise SkinTwinError(f"audit: {folder} has no images/ folder (YOLO: images/, labels/)")
    images = list_images(images_dir)
    if not images:
        raise SkinTwinError(f"audit: no images in {images_dir}")
    nested = [p for p in images if p.parent != images_dir]
    if nested:
        raise SkinTwinError(f"audit: {nested[0]}: put the photos directly in {images_dir}")
    for image in images:
        label = label_path(image)
        if label.is_file():
            found = parse_labels(label, len(names), overflow)[1]
            bad = [p for p in found if p.severity == "error"]
            if bad:
                raise SkinTwinError(f"audit: {bad[0].file}:{bad[0].line}: {bad[0].message}")
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


def _with_interval(value: float, sd: float) -> dict:
    lo, hi = np.clip([value - Z95 * sd, value + Z95 * sd], 0.0, 1.0)
    return {"value": round(value, 4), "lo": round(float(lo), 4), "hi": round(float(hi), 4)}


def audit_sample(model: LoadedModel, folder: Path, params: Params, min_images: int = 30) -> dict:
    """{"images", "estimate_available", "slices": {name: {"images", "true", "estimate",
    "test", "fall", "estimate_error"}}, "falls": [...]}: each slice's true figures (95%
    interval from the half-sample spread), the label-free estimate of the same photos, the
    version's test figures and how far the truth fell below them. A fall of more than
    `monitor.estimate_drop` in mAP50 or recall is listed; it is `sure` when the interval's
    top is still that far below the test figure."""
    names = tuple(model.detector.names.values())
    images = sample_images(folder, names, params.validate_.max_box_overflow)
    rows = _served_rows(model, images, params)  # first: a photo that cannot be read fails
    truth_stats = _validator_truth(model, images, params)  # (the validator would skip it)
    group_of = dict(zip(rows["image_ref"], rows["tone_group"].astype(str), strict=True))
    groups = tuple(group_of[f] for f in truth_stats.files)
    doc = model.estimator_doc()
    monitor = params.monitor.model_copy(update={"estimate_min_images": min_images})
    order = {f: i for i, f in enumerate(rows["image_ref"])}
    aligned = rows.iloc[[order[f] for f in truth_stats.files]].reset_index(drop=True)
    estimate = estimate_window(doc, aligned, monitor)
    truth = partial(true_figures, operating_conf=doc.get("operating_conf", params.monitor.conf))
    out, falls = {}, []
    for name, members in slices(groups, min_images).items():
        labelled = truth_stats.subset(members)
        true, sd = truth(labelled), half_spread(labelled, truth)
        entry: dict = {
            "images": int(members.size),
            "true": {f: _with_interval(true[f], sd.get(f, 0.0)) for f in FIGURES},
        }
        if estimate["available"]:
            est = estimate["slices"][name]
            test = slice_baseline(doc["test"], name)["true"]
            entry["estimate"] = {f: est[f] for f in FIGURES}
            entry["test"] = {f: round(test[f], 4) for f in FIGURES}
            entry["fall"] = {f: fall(test[f], true[f]) for f in FIGURES}
            entry["estimate_error"] = {f: round(est[f]["value"] - true[f], 4) for f in FIGURES}
            falls += [
                {"slice": name, "figure": f, "images": int(members.size),
                 "fall": entry["fall"][f], "now": true[f],
                 "sure": test[f] - entry["true"][f]["hi"] > params.monitor.estimate_drop}
                for f in WATCHED
                if entry["fall"][f] > params.monitor.estimate_drop
            ]  # fmt: skip
        out[name] = entry
    return {
        "images": len(images),
        "model": {"name": model.name, "version": model.version},
        "estimate_available": estimate["available"],
        "estimate_reason": estimate.get("reason"),
        "slices": out,
        "falls": falls,
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
    if not result["estimate_available"]:
        lines += ["", f"No test figures or estimate: {result['estimate_reason']}"]
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
