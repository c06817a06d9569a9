"""evaluate: measure the trained candidate on the test split only, with Ultralytics' own
validator.

Writes `metrics.json` (overall, per class, per skin-tone group, with image counts and 95%
intervals of the gate's metric) for `dvc metrics show/diff` and CSV plot data for `dvc
plots show` (PR curve, confusion matrix), small and kept in git; the per-image rows the gate
compares with (`test_stats.npz`) and PNG charts for people under `charts/` (DVC-cached);
and logs all of it to the training's MLflow run.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
from pathlib import Path

from skintwin.data.dataset import list_images
from skintwin.io import atomic_dir, atomic_write_json, check_output_dir, file_sha256
from skintwin.params import EvaluateParams
from skintwin.project import read_run_record
from skintwin.runtime import Beside
from skintwin.training import charts
from skintwin.training.embedding import fit_projection
from skintwin.training.evaluation import Evaluation, evaluate_weights
from skintwin.training.parity import LOW_CONF, parity_record
from skintwin.training.seen import write_seen
from skintwin.training.served import ServedRuns
from skintwin.training.validator import Rows, run_val
from skintwin.training.version_estimator import fit_for_version

log = logging.getLogger(__name__)


def run_evaluate(
    weights: Path,
    dataset: Path,
    params: EvaluateParams,
    out: Path,
    metric: str = "mAP50",
    device: str = "cpu",
    operating_conf: float = 0.25,
    serving_imgsz: int | None = None,
    run_id: str | None = None,
) -> Evaluation:
    """Evaluate `weights` on `dataset`'s test split and write the reports into `out`; fit
    the label-free performance estimator on the validation split (`estimator.json`) and the
    drift embedding's projection on the training split (`embedding.npz`); export the ONNX
    model (`model.onnx`) and check it against the `.pt` on the test split (`parity.json`);
    list the photos the model trained and was selected on (`seen.json`); and name the
    training run `run_id` and the weights' SHA-256 these figures are of (`candidate.json`:
    registration refuses figures of other weights).

    Ultralytics' validator (test and validation splits) runs in a second process, beside
    the export and the service's passes (`runs`) in this one: PyTorch on a CPU takes one
    core a process, as Ultralytics sets it."""
    inputs = [dataset, Path(weights).parent]
    check_output_dir(out, "evaluate", inputs)  # before the work, not after
    imgsz = serving_imgsz or params.imgsz
    runs = ServedRuns(imgsz)  # one detector; parity's `.pt` pass is the estimator's test pass
    with (
        Beside(_validator_passes, weights, dataset, params, metric, device) as validated,
        atomic_dir(out, owner="evaluate", inputs=inputs) as tmp,
    ):
        from skintwin.model.onnx import export_onnx

        write_seen(dataset, tmp / "seen.json")  # first: an old reference table fails at once
        atomic_write_json(tmp / "candidate.json",
                          {"run_id": run_id, "weights_sha256": file_sha256(weights)})  # fmt: skip
        onnx = export_onnx(weights, tmp / "model.onnx", imgsz, params.embed_layer)
        _serve_splits(runs, weights, onnx, dataset, operating_conf, params)
        result, val = validated.result()
        parity = parity_record(weights, onnx, dataset, result, operating_conf, imgsz, runs)
        serving = onnx if parity["passed"] else weights  # what production will run
        estimator = fit_for_version(serving, dataset, params, device, result, operating_conf,
                                    imgsz, runs=runs, val=val)  # fmt: skip
        estimator["runtime"] = "onnx" if parity["passed"] else "pytorch"
        projection = fit_projection(serving, dataset, params, imgsz, runs)
        atomic_write_json(tmp / "metrics.json", result.metrics_doc())
        atomic_write_json(tmp / "estimator.json", estimator)
        projection.save(tmp / "embedding.npz")
        atomic_write_json(tmp / "parity.json", parity)
        result.save_stats(tmp / "test_stats.npz")
        names = list(result.pr_curves)
        with (tmp / "pr_curve.csv").open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["recall", *names])
            for i in range(101):
                writer.writerow([i / 100, *(round(result.pr_curves[n][i], 5) for n in names)])
        with (tmp / "confusion.csv").open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["actual", "predicted"])
            writer.writerows(result.confusion)
        (tmp / "charts").mkdir()
        charts.pr_curve(result, tmp / "charts" / "pr_curve.png")
        charts.per_group(result, metric, tmp / "charts" / "per_group.png")
    log.info("test metrics: %s", json.dumps(result.overall))
    return result


def _validator_passes(weights, dataset, params, metric, device) -> tuple[Evaluation, Rows]:
    """Ultralytics' validator on the test split (the evaluation) and on the validation
    split (the label-free estimator's truth)."""
    val = run_val(weights, dataset, params, device, split="val")
    return evaluate_weights(weights, dataset, params, metric, device), Rows(val.rows, val.names)


def _serve_splits(runs, weights, onnx, dataset, conf, params) -> None:
    """The service's passes that parity (both runtimes on the test split, down to its
    floor), the estimator (validation split) and the projection (training split) read: on
    the export, which serves once its parity passes (if it fails, those two run again on
    the `.pt` afterwards)."""
    test = list_images(dataset / "images" / "test")
    for model in (onnx, weights):
        runs.predict(model, test, LOW_CONF)
    runs.predict(onnx, sorted((dataset / "images" / "val").iterdir()), conf)
    runs.predict(onnx, list_images(dataset / "images" / "train"), 0.25, params.embed_layer)


def main(argv: list[str] | None = None) -> int:
    from skintwin.params import load_params
    from skintwin.runtime import run_main
    from skintwin.training.tracking import configure_tracking, log_evaluation, require_run

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="preprocessed dataset folder")
    parser.add_argument("--model", required=True, help="train stage output folder")
    parser.add_argument("--out", required=True, help="report folder to write")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)

    def body() -> None:
        params = load_params(args.params)
        model_dir = Path(args.model)
        record = read_run_record(model_dir / "run.json")
        uri = configure_tracking(Path.cwd())
        require_run(record["run_id"], uri, model_dir / "run.json")  # before any output
        out = Path(args.out)
        result = run_evaluate(
            model_dir / record["weights"],
            Path(args.data),
            params.evaluate,
            out,
            params.promote.metric,
            params.train.device,
            params.monitor.conf,  # production stores detections at this confidence and above
            params.monitor.imgsz,  # ... predicted at this size
            record["run_id"],
        )
        log_evaluation(record["run_id"], result.flat(), out)

    return run_main(body)


if __name__ == "__main__":
    raise SystemExit(main())
