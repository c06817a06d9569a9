"""One benchmark command: `python -m bench [--size small|default]`.

`--size large --only estimate` measures the label-free estimate at the tone-group sizes
monitoring alarms on (`monitor.estimate_min_images`), on the default size's model.

Prints each figure beside its baseline measured in the same run, the ratio and the target,
and saves the table as JSON under bench/results/ so two commits can be compared.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from bench import (
    attribution,
    drift,
    estimate,
    gate,
    load,
    monitoring,
    scaleout,
    serving,
    training,
)
from bench.common import save, table


def main() -> int:
    from skintwin.runtime import configure_offline

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=["small", "default", "large"], default="small")
    every = ["monitoring", "attribution", "training", "serving", "load", "gate", "drift"]
    every += ["estimate", "scaleout"]
    parser.add_argument("--only", choices=every, action="append")
    parser.add_argument(
        "--device", default="cpu", help='training device: "cpu" (default), "0" for a GPU'
    )
    parser.add_argument(
        "--seed",
        type=int,
        help="another model: the demo photos, their split and training drawn from this seed "
        "(params.yaml's seeds when left out); the benchmarks' own batches stay the same",
    )
    args = parser.parse_args()
    if args.size == "large" and args.only != ["estimate"]:
        parser.error("--size large is the estimate benchmark's alone: add --only estimate")
    model_size = "default" if args.size == "large" else args.size
    configure_offline(Path(__file__).resolve().parents[1])
    rows: list = []

    def section(new_rows: list) -> None:
        """Print a benchmark's rows as soon as it is done: a later failure keeps them."""
        print(table(new_rows), flush=True)
        rows.extend(new_rows)

    want = set(args.only or every)
    needs_model = {"serving", "load", "gate", "drift", "estimate", "scaleout"}
    with tempfile.TemporaryDirectory(prefix="skintwin-bench-") as tmp:
        work = Path(tmp)
        if "monitoring" in want:
            section(monitoring.run(work / "monitoring", args.size))
        if "attribution" in want:
            section(attribution.run(args.size))
        if "training" in want:
            train_rows, project = training.run(
                work / "training", args.size, args.device, args.seed
            )
            section(train_rows)
        elif want & needs_model:
            project = training.trained_project(
                work / "training", model_size, args.device, args.seed
            )
        if want & needs_model:
            for name, module, folder in (
                ("serving", serving, "serving"),
                ("load", load, "load"),
                ("gate", gate, "gate"),
                ("drift", drift, "gate"),  # the gate's model
                ("estimate", estimate, "gate"),
                ("scaleout", scaleout, "scaleout"),
            ):
                if name in want:
                    section(module.run(work / folder, args.size, project))
    print("\nall figures:")
    print(table(rows))
    path = save(rows, args.size)
    print(f"\nsaved {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
