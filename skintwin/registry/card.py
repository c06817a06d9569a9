"""The model card of a registered version: written by the pipeline, never by hand.

One document (JSON, validated against `model_card.schema.json`, which ships with the
package) rendered as Markdown and as a standalone HTML page with its charts inline. The
human-written part — intended use, out-of-scope use, limitations — comes from the
versioned `model_card.yaml`; everything else is what the pipeline measured or recorded. A
field the pipeline does not know says "unknown", never a guess.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import yaml

from skintwin.errors import SkinTwinError
from skintwin.project import ProjectPaths
from skintwin.registry.card_page import CHARTS, TEXT_KEYS, UNKNOWN, html, markdown
from skintwin.registry.lineage import trained_elsewhere
from skintwin.training.evaluation import Evaluation

SCHEMA = Path(__file__).with_name("model_card.schema.json")
TEXT_FILE = "model_card.yaml"
_QUANTILES = {"p05": 0.05, "median": 0.5, "p95": 0.95}
_LINEAGE = (
    "git_commit",
    "git_dirty",
    "dvc_data_md5",
    "dvc_model_md5",
    "mlflow_run_id",
    "prefect_flow_run_id",
    "params",
)


def _figure(scores: dict, metric: str) -> dict:
    return {
        "images": int(scores.get("images", 0)),
        "value": float(scores[metric]),
        "lo": scores.get(f"{metric}_lo", UNKNOWN),
        "hi": scores.get(f"{metric}_hi", UNKNOWN),
    }


def texts(root: Path) -> dict[str, list[str]]:
    """The human-written sections, from `model_card.yaml` (checked)."""
    path = root / TEXT_FILE
    if not path.is_file():
        raise SkinTwinError(f"{path}: missing; the model card's intended use is written there")
    doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    out = {}
    for key in TEXT_KEYS:
        value = doc.get(key)
        if not isinstance(value, list) or not value:
            raise SkinTwinError(f"{path}: {key} must be a non-empty list of sentences")
        out[key] = [" ".join(str(v).split()) for v in value]
    return out


def _training_data(paths: ProjectPaths, dataset: str) -> dict | str:
    """Splits, ITA quantiles and near-duplicates of the data the version was trained on."""
    if not (paths.split_report.is_file() and paths.reference_features.is_file()):
        return UNKNOWN
    report = json.loads(paths.split_report.read_text())
    table = pd.read_parquet(paths.reference_features, columns=["split", "ita"])
    ita = {
        split: {q: round(float(part["ita"].quantile(v)), 1) for q, v in _QUANTILES.items()}
        for split, part in table.groupby("split")
    }
    near = report.get("near_duplicates", {})
    return {
        "dataset": dataset,
        "splits": report["splits"],
        "ita": ita,
        "near_duplicates": {
            "groups": len(near.get("groups", [])),
            "dropped_from_training_side": len(near.get("dropped_from_training_side", [])),
            "exact_duplicates_dropped": near.get("exact_duplicates_dropped", 0),
        },
    }


def build(
    paths: ProjectPaths, name: str, version: str, tags: dict, evaluation: Evaluation, record: dict
) -> dict:
    """The card's document from the version's tags, its evaluation and the gate's record."""
    params = json.loads(tags.get("lineage.params") or "{}")
    external = trained_elsewhere(tags)  # then this project's params and data did not make it
    train = {} if external else params.get("train", {})
    metric = record.get("metric", "mAP50")
    classes = json.loads(tags["lineage.classes"]) if "lineage.classes" in tags else UNKNOWN
    return {
        "schema_version": 1,
        "model": {
            "name": name,
            "version": str(version),
            "architecture": str(train.get("model", UNKNOWN)),
            "input_size": train.get("imgsz", UNKNOWN),
            "classes": classes if classes else UNKNOWN,
        },
        **texts(paths.root),
        "training_data": UNKNOWN
        if external
        else _training_data(paths, str(params.get("data", {}).get("path", UNKNOWN))),
        "evaluation": {
            "metric": metric,
            "overall": _figure(evaluation.overall, metric),
            "classes": {c: _figure(v, metric) for c, v in evaluation.per_class.items()},
            "tone_groups": {g: _figure(v, metric) for g, v in evaluation.per_group.items()},
        },
        "decision": {
            "promoted": bool(record.get("promote")),
            "rule": str(record.get("rule", UNKNOWN)),
            "reasons": list(record.get("reasons", [])),
            "groups": record.get("groups") or {},
            "change_control": list(record.get("change_control") or []),
        },
        "lineage": _lineage(tags, params, external),
    }


def _lineage(tags: dict, params: dict, external: bool) -> dict:
    """The version's lineage tags. Weights trained elsewhere: the workspace's model output
    and training params did not make them (the card named another version's), so the
    weights' own source is given instead, and the params that evaluated and gated them."""
    lineage = {key: tags.get(f"lineage.{key}") or UNKNOWN for key in _LINEAGE}
    if external:
        lineage["dvc_model_md5"] = UNKNOWN
        lineage["params"] = json.dumps({k: v for k, v in params.items() if k != "train"})
        lineage["source_weights"] = tags["lineage.source_weights"]
    return lineage


def validate(card: dict) -> None:
    """Raise, naming the field, when the card does not meet the shipped schema."""
    from jsonschema import Draft202012Validator

    validator = Draft202012Validator(json.loads(SCHEMA.read_text()))
    errors = sorted(validator.iter_errors(card), key=lambda e: list(e.absolute_path))
    if errors:
        where = "/".join(str(p) for p in errors[0].absolute_path) or "(top)"
        raise SkinTwinError(f"model card field {where}: {errors[0].message}")


def write(card: dict, folder: Path, charts: Path | None) -> Path:
    """Validate, then write model_card.{json,md,html} into `folder`; returns the HTML path."""
    from skintwin.io import atomic_write_bytes, atomic_write_json

    validate(card)
    folder.mkdir(parents=True, exist_ok=True)
    own = folder / "charts"  # the card keeps its charts: a later evaluation cannot change them
    for chart in CHARTS if charts is not None and charts != own else ():
        if (charts / chart).is_file():
            atomic_write_bytes(own / chart, (charts / chart).read_bytes())
    charts = own if charts is not None else None
    atomic_write_json(folder / "model_card.json", card)
    atomic_write_bytes(folder / "model_card.md", markdown(card).encode())
    atomic_write_bytes(folder / "model_card.html", html(card, charts).encode())
    return folder / "model_card.html"


def record_approval(folder: Path, approval: dict) -> Path | None:
    """Re-issue the card in `folder` with a human's approval (`by`, `reason`, `time`,
    `over`); None when the version has no card there (made before cards, or deleted)."""
    path = folder / "model_card.json"
    if not path.is_file():
        return None
    card = json.loads(path.read_text())
    card["decision"]["approval"] = approval
    return write(card, folder, folder / "charts" if (folder / "charts").is_dir() else None)
