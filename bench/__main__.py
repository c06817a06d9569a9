"""One benchmark command: `python -m bench [--size small|default]`.

Prints each figure beside its baseline measured in the same run, the ratio and the target,
and saves the table as JSON under bench/results/ so two commits can be compared.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from bench import drift, estimate, gate, load, monitoring, scaleout, serving, training
from bench.common import save, table


def main() -> int:
    from skintwin.runtime import configure_offline

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=["small", "default"], default="small")
    parser.add_argument(
        "--only",
        choices=[
            "training",
            "monitoring",
            "serving",
            "load",
            "gate",
            "drift",
            "estimate",
            "scaleout",
        ],
        action="append",
    )
    args = parser.parse_args()
    configure_offline(Path(__file__).resolve().parents[1])
    rows = []
    with tempfile.TemporaryDirectory(prefix="skintwin-bench-") as tmp:
        work = Path(tmp)
        if not args.only or "monitoring" in args.only:
            rows += monitoring.run(work / "monitoring", args.size)
        every = ["monitoring", "training", "serving", "load", "gate", "drift", "estimate"]
        every.append("scaleout")
        want = set(args.only or every)
        if want & {"training", "serving", "load", "gate", "drift", "estimate", "scaleout"}:
            train_rows, project = training.run(work / "training", args.size)
            rows += train_rows if "training" in want else []
            if "serving" in want:
                rows += serving.run(work / "serving", args.size, project)
            if "load" in want:
                rows += load.run(work / "load", args.size, project)
            if "gate" in want:
                rows += gate.run(work / "gate", args.size, project)
            if "drift" in want:
                rows += drift.run(work / "gate", args.size, project)  # the gate's model
            if "estimate" in want:
                rows += estimate.run(work / "gate", args.size, project)
            if "scaleout" in want:
                rows += scaleout.run(work / "scaleout", args.size, project)
    print(table(rows))
    path = save(rows, args.size, Path(__file__).parent / "results")
    print(f"\nsaved {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
