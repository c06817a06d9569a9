"""A labelled audit: the champion's true performance on production photos whose labels came
back, overall and per tone group, beside its test figures and its label-free estimate.

    skintwin audit --images DIR               # DIR/images + DIR/labels (YOLO flat layout)
    skintwin audit --images DIR --min-images 50
    python -m flows.audit --images DIR        # the same

The label-free estimate says how the model probably does; an audit of a few hundred
labelled photos says how it did, and how far the estimate was off on them. Writes
reports/audit/<time>-<token>-<source>/ (audit.json, audit.md), a Prefect artifact, an MLflow
run under `skin-twin-monitoring`, an alert when a true figure fell more than
`monitor.estimate_drop` below the version's test figure, and the estimate's error on each
slice in the store, on which later drift checks anchor each tone group's estimate. Nothing
is written when the sample is bad (a label line, an unreadable photo): the error names the
file.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from prefect import flow
from prefect.logging import get_run_logger

from skintwin.errors import SkinTwinError
from skintwin.monitoring.audit import MIN_IMAGES
from skintwin.monitoring.scoring import report_dir
from skintwin.params import load_params
from skintwin.project import ProjectPaths, safe_name, slug
from tasks.audit_tasks import (
    audit_labelled,
    keep_audit_errors,
    log_audit_to_mlflow,
    raise_audit_alert,
    write_audit,
)
from tasks.monitoring_tasks import load_model, timestamp


@flow(name="audit", log_prints=True)
def audit_flow(
    images_dir: str,
    source: str | None = None,
    project_dir: str | None = None,
    min_images: int = 30,
) -> dict:
    """Measure the champion on a labelled sample of production photos.

    Args:
        images_dir: the sample, `images/` beside `labels/`.
        source: its name in the report folder and the alert (default: the folder's name).
        min_images: a tone group is reported from this many photos.
    """
    if not (isinstance(min_images, int) and min_images >= MIN_IMAGES):
        raise SkinTwinError(f"min_images: {min_images!r} is not a whole number ≥ {MIN_IMAGES}")
    paths = ProjectPaths.find(project_dir)
    root = str(paths.root)
    params = load_params(paths.params)
    subject = safe_name(source if source is not None else slug(Path(images_dir).name), "source")
    model = load_model(root)
    result = audit_labelled(model, images_dir, params, min_images)
    out_dir = str(report_dir(paths.audit_reports, subject, timestamp()))
    write_audit(result, out_dir)
    keep_audit_errors(root, result, subject)  # before the alert: a store failure stops both
    alert = raise_audit_alert(root, result, params.monitor, subject)
    log_audit_to_mlflow(root, result, subject, out_dir)
    get_run_logger().info("audit of %s written to %s", subject, out_dir)
    return {"result": result, "alert": alert, "report_dir": out_dir}


def main(argv: list[str] | None = None) -> int:
    import json

    from skintwin.runtime import run_main

    parser = argparse.ArgumentParser(description="Audit the champion on labelled photos.")
    parser.add_argument("--images", required=True, help="folder with images/ and labels/")
    parser.add_argument("--source")
    parser.add_argument("--min-images", type=int, default=30)
    parser.add_argument("--project-dir")
    args = parser.parse_args(argv)

    def body() -> None:
        out = audit_flow(args.images, args.source, args.project_dir, args.min_images)
        print(json.dumps({k: out[k] for k in ("alert", "report_dir")}, indent=2, default=str))

    return run_main(body)


if __name__ == "__main__":
    raise SystemExit(main())
