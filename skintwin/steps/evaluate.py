"""evaluate: measure the trained candidate on the test split only.

Writes `metrics.json` (overall, per class, per skin-tone group, with image counts) for
`dvc metrics show/diff` and CSV plot data for `dvc plots show` (PR curve, confusion
matrix), both small and kept in git; PNG charts for people under `charts/` (DVC-cached);
and logs all of it to the training's MLflow run.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
from pathlib import Path

from skintwin.io import atomic_dir, atomic_write_json, check_output_dir
from skintwin.params import EvaluateParams
from skintwin.training.evaluation import Evaluation, evaluate_weights

log = logging.getLogger(__name__)


def _charts(result: Evaluation, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4))
    for name, curve in result.pr_curves.items():
        ax.plot([i / 100 for i in range(101)], curve, label=name)
    ax.set(xlabel="recall", ylabel="precision", title="PR curve (test, IoU 0.5)", ylim=(0, 1.05))
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "pr_curve.png", dpi=100)
    plt.close(fig)
    groups = result.per_group
    fig, ax = plt.subplots(figsize=(6, 4))
    labels = [f"{g}\n(n={v['images']})" for g, v in groups.items()]
    ax.bar(labels, [v["mAP50"] for v in groups.values()], color="#c97b63")
    ax.axhline(result.overall["mAP50"], color="k", ls="--", label="overall")
    ax.set(ylabel="mAP50", ylim=(0, 1), title="Test mAP50 per skin-tone group")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "per_group.png", dpi=100)
    plt.close(fig)


def run_evaluate(
    weights: Path, dataset: Path, params: EvaluateParams, out: Path, device: str = "cpu"
) -> Evaluation:
    """Evaluate `weights` on `dataset`'s test split and write the reports into `out`."""
    inputs = [dataset, Path(weights).parent]
    check_output_dir(out, "evaluate", inputs)  # before the work, not after
    result = evaluate_weights(weights, dataset, params, device)
    with atomic_dir(out, owner="evaluate", inputs=inputs) as tmp:
        atomic_write_json(tmp / "metrics.json", result.metrics_doc())
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
        _charts(result, tmp / "charts")
    log.info("test metrics: %s", json.dumps(result.overall))
    return result


def main(argv: list[str] | None = None) -> int:
    from skintwin.params import load_params
    from skintwin.runtime import run_main
    from skintwin.training.tracking import configure_tracking, log_evaluation

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="preprocessed dataset folder")
    parser.add_argument("--model", required=True, help="train stage output folder")
    parser.add_argument("--out", required=True, help="report folder to write")
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args(argv)

    def body() -> None:
        params = load_params(args.params)
        model_dir = Path(args.model)
        record = json.loads((model_dir / "run.json").read_text())
        out = Path(args.out)
        result = run_evaluate(
            model_dir / record["weights"],
            Path(args.data),
            params.evaluate,
            out,
            params.train.device,
        )
        configure_tracking(Path.cwd())
        log_evaluation(record["run_id"], result.flat(), out)

    return run_main(body)


if __name__ == "__main__":
    raise SystemExit(main())
