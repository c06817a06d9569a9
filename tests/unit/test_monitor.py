from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from skintwin.data.features import extract_many
from skintwin.data.synth import SHIFTS, encode_jpeg, paint
from skintwin.monitoring.monitor import ModelMonitor
from skintwin.monitoring.records import prediction_mix, prediction_row, store_frame
from skintwin.params import GenerateParams
from tests.conftest import REPO


def _fake_detector(boxes, size: int) -> dict:
    """Detections as a perfect detector would report them (pixel xyxy)."""
    return {
        "detections": [
            {
                "class_name": ["acne", "mole", "rash"][c],
                "confidence": 0.8,
                "box": [
                    (cx - w / 2) * size,
                    (cy - h / 2) * size,
                    (cx + w / 2) * size,
                    (cy + h / 2) * size,
                ],
            }
            for c, cx, cy, w, h in boxes
        ]
    }


def _production(base: dict, seed: int, shift: str, n: int = 60) -> pd.DataFrame:
    gen = GenerateParams.model_validate({**base, "seed": seed})
    rows = []
    for i in range(n):
        p = paint(
            seed,
            i,
            160,
            gen.class_weights,
            gen.tone_weights,
            gen.max_lesions,
            gen.background_fraction,
            SHIFTS[shift],
        )
        size = p.rgb.shape[0]
        rows.append(
            prediction_row(
                _fake_detector(p.boxes, size), encode_jpeg(p.rgb, p.jpeg_quality), model_name="m"
            )
        )
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def reference(demo_dataset: Path) -> pd.DataFrame:
    images = sorted((demo_dataset / "images").iterdir())
    labels = [_labels(demo_dataset, image) for image in images]
    boxes = [[tuple(r[1:]) for r in rows] for rows in labels]
    frame = pd.DataFrame(extract_many(images, boxes, workers=1))
    frame["n_detections"] = [len(b) for b in boxes]
    frame["mean_confidence"] = [0.8 if b else 0.0 for b in boxes]
    size = 160  # the demo dataset's images
    rows = [_fake_detector([(int(r[0]), *r[1:]) for r in found], size) for found in labels]
    mix = [prediction_mix(r["detections"], size, size) for r in rows]
    frame["main_class"] = [m["main_class"] for m in mix]
    frame["box_size"] = [m["box_size"] for m in mix]
    return frame


def _labels(dataset: Path, image: Path) -> np.ndarray:
    label = dataset / "labels" / f"{image.stem}.txt"
    return np.loadtxt(label, ndmin=2) if label.exists() else np.zeros((0, 5))


def test_prediction_row_features_and_bad_bytes() -> None:
    rgb = np.full((40, 60, 3), 150, np.uint8)
    pred = {
        "detections": [
            {"class_name": "mole", "confidence": 0.9, "box": [1, 1, 10, 10]},
            {"class_name": "mole", "confidence": 0.7, "box": [20, 5, 30, 15]},
        ]
    }
    row = prediction_row(pred, rgb, model_name="m", model_version=3, latency_ms=5.0)
    assert row["n_detections"] == 2 and row["class_counts"] == {"mole": 2}
    assert row["mean_confidence"] == pytest.approx(0.8)
    assert row["width"] == 60 and row["height"] == 40 and row["tone_group"]
    bad = prediction_row(pred, b"%PDF-1.4 not an image", model_name="m")
    assert "not a decodable image" in bad["error"] and "brightness" not in bad
    # the prediction mix: the class found most often, the median box side / image side
    assert row["main_class"] == "mole"
    assert row["box_size"] == pytest.approx(np.median([9, 10]) / np.sqrt(60 * 40))
    tie = [
        {"class_name": c, "confidence": p, "box": [0, 0, 4, 4]}
        for c, p in (("acne", 0.4), ("rash", 0.9))
    ]
    assert prediction_mix(tie, 8, 8)["main_class"] == "rash"  # equal counts: more confident
    none = prediction_mix([], 8, 8)
    assert none["main_class"] == "none" and np.isnan(none["box_size"])
    # the store keeps detections as JSON; its frame derives the same columns from them
    stored = {k: json.dumps(v) if isinstance(v, dict | list) else v for k, v in row.items()}
    again = store_frame(pd.DataFrame([stored]))
    assert again["main_class"].iloc[0] == "mole"
    assert again["box_size"].iloc[0] == pytest.approx(row["box_size"])


def test_monitor_logs_good_and_failed_rows(tmp_path: Path) -> None:
    monitor = ModelMonitor(f"sqlite:///{tmp_path / 'p.db'}", project_dir=REPO)
    monitor.log_prediction({"detections": []}, input_data=np.zeros((8, 8, 3), np.uint8))
    row = monitor.log_prediction({"detections": []}, input_data=b"\x00garbage")
    assert row["error"]
    frame = monitor.store.window()
    assert len(frame) == 2 and frame["error"].notna().sum() == 1


@pytest.mark.parametrize("seed", [21, 22, 23, 24])
def test_unshifted_batches_raise_no_alarm(
    reference: pd.DataFrame, base_params: dict, tmp_path: Path, seed: int
) -> None:
    monitor = ModelMonitor(f"sqlite:///{tmp_path / 'p.db'}", project_dir=REPO)
    result = monitor.detect_data_drift(
        _production(base_params["generate"], seed, "none"), reference
    )
    assert result.enough_data and not result.drift_detected, result.drifted_columns


@pytest.mark.parametrize(
    ("shift", "column"),
    [
        ("lighting", "brightness"),
        ("blur", "sharpness"),
        ("tone", "tone_group"),
        ("lesions", "main_class"),
    ],
)
def test_shifted_batches_drift(
    reference: pd.DataFrame, base_params: dict, tmp_path: Path, shift: str, column: str
) -> None:
    monitor = ModelMonitor(f"sqlite:///{tmp_path / 'p.db'}", project_dir=REPO)
    result = monitor.detect_data_drift(
        _production(base_params["generate"], 31, shift), reference, out_dir=tmp_path / "report"
    )
    assert column in result.drifted_columns, result.drifted_columns
    assert result.drift_detected
    assert Path(result.report_html).is_file()
    assert (tmp_path / "report" / "drift_summary.json").is_file()


def test_too_few_rows_is_not_an_alarm(
    reference: pd.DataFrame, base_params: dict, tmp_path: Path
) -> None:
    monitor = ModelMonitor(f"sqlite:///{tmp_path / 'p.db'}", project_dir=REPO)
    few = _production(base_params["generate"], 41, "lighting", n=5)
    result = monitor.detect_data_drift(few, reference)
    assert result.enough_data is False and result.drift_detected is False
    assert "min_rows" in result.details["reason"]
