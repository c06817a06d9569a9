"""Skin-Twin MLOps: train, gate, serve and monitor skin-lesion detectors (`skintwin --help`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from skintwin.ops import cli_registry
from skintwin.ops.cli_support import iso, print_json, project
from skintwin.runtime import run_main


def _train(args: argparse.Namespace) -> None:
    from flows.training import training_flow

    out = training_flow(args.data_path, str(project(args).root), args.force_train)
    print_json(out["decision"])


def _score(args: argparse.Namespace) -> None:
    from flows.batch_inference import batch_inference_flow

    root = str(project(args).root)
    print_json(
        batch_inference_flow(
            args.images, args.source, root, batch_id=args.batch_id, dask_workers=args.dask_workers
        )
    )


def _drift(args: argparse.Namespace) -> None:
    from flows.drift import drift_flow

    out = drift_flow(args.window_hours, args.source, args.images, str(project(args).root))
    verdict = {"drift_detected": out["result"]["drift_detected"]}
    print_json({k: out[k] for k in ("alert", "report_dir")} | verdict)


def _audit(args: argparse.Namespace) -> None:
    from flows.audit import audit_flow

    out = audit_flow(args.images, args.source, str(project(args).root), args.min_images)
    print_json({k: out[k] for k in ("alert", "report_dir")} | {"falls": out["result"]["falls"]})


def _alerts(args: argparse.Namespace) -> None:
    import time

    from skintwin.errors import SkinTwinError
    from skintwin.monitoring.alerts import SEVERITY_RANK, recent_alerts
    from skintwin.monitoring.monitor import ModelMonitor

    paths = project(args)
    since = time.time() - args.since_hours * 3600
    found = recent_alerts(paths.alerts, since)
    for a in found:
        print(f"{a['time_iso']}  {a['severity']:8} {a['kind']}: {a['summary']}")
    # a condition alerted earlier and found again since (de-duplicated) is still on
    ongoing = ModelMonitor(project_dir=paths.root).store.ongoing_alerts(since)
    for c in ongoing:
        print(f"ongoing           {c['severity']:8} {c['key']} (first alerted {iso(c['time'])})")
    if not found and not ongoing:
        print(f"no alerts in the last {args.since_hours:g} h")
    levels = [a["severity"] for a in found] + [c["severity"] for c in ongoing]
    worst = max((SEVERITY_RANK[s] for s in levels), default=-1)
    if args.fail_on and worst >= SEVERITY_RANK[args.fail_on]:
        raise SkinTwinError(f"an alert of severity ≥ {args.fail_on} is raised or ongoing")


def _hours(text: str) -> float:
    """A positive, finite number of hours (argparse type)."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value <= 24 * 366:
        raise argparse.ArgumentTypeError(f"{text!r} is not 0 < hours ≤ 8784")
    return value


def _workers(text: str) -> int:
    if not text.isdigit() or int(text) > 256:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of workers from 0 to 256")
    return int(text)


def _photos(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of photos ≥ 1")
    return int(text)


def _port(text: str) -> int:  # 99999 listened on 34463
    from skintwin.ops.processes import tcp_port

    if (port := tcp_port(text)) is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a TCP port (1–65535)")
    return port


def _serve(args: argparse.Namespace) -> None:
    from skintwin.serving.app import serve

    serve(args.host, args.port, str(project(args).root))


# what a shell needs to use the team profile's store and S3 API (`dvc push`, `skintwin score`)
TEAM_CLIENT_ENV = (
    "SKINTWIN_MONITOR_DB",
    "AWS_ENDPOINT_URL_S3",
    "MLFLOW_S3_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_DEFAULT_REGION",
)


def _plane(args: argparse.Namespace) -> None:
    from skintwin.ops import plane

    p = plane.plane(project(args).root, profile=getattr(args, "profile", None))
    if args.command == "up":
        print_json(plane.up(p, worker=not args.no_worker))
        exports = {"PREFECT_API_URL": p.prefect_api, "MLFLOW_TRACKING_URI": p.mlflow_uri}
        if p.profile == "team":
            env = p.env()  # built once: it reads the running profile's record
            exports |= {k: env[k] for k in TEAM_CLIENT_ENV}
        print("\nexport " + " ".join(f"{k}={v}" for k, v in exports.items()))
    elif args.command == "down":
        print("stopped:", ", ".join(plane.down(p)) or "nothing was running")
    else:
        print_json(plane.status(p))


def _demo(args: argparse.Namespace) -> None:
    from skintwin.ops.demo import print_demo, run_demo

    paths = project(args)
    print_demo(run_demo(paths))
    _where(args)


def _plots(args: argparse.Namespace) -> None:
    from skintwin.ops.plots_page import show

    page = show(project(args).root)
    print(f"{page}  (Vega inlined: opens without internet)")


def _report(args: argparse.Namespace) -> None:
    from skintwin.ops.pr_report import write_report

    paths = project(args)
    page = write_report(paths, args.base, Path(args.out or paths.root / "reports" / "pr"))
    print(page.read_text(encoding="utf-8"))
    print(f"written: {page}")


def _where(args: argparse.Namespace) -> None:
    from skintwin.ops.demo import where

    print(where(project(args)))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="skintwin", description=__doc__.splitlines()[0])
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--project-dir", default=argparse.SUPPRESS, help="project (dvc.yaml)")
    parser.add_argument("--project-dir", help="project folder holding dvc.yaml")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, handler, text: str) -> argparse.ArgumentParser:
        cmd = sub.add_parser(name, parents=[common], help=text, description=text)
        cmd.set_defaults(handler=handler)
        return cmd

    train = add("train", _train, "run the training flow: validate → … → register → gate")
    train.add_argument("--data-path", help="dataset folder (default: params.yaml data.path)")
    train.add_argument("--force-train", action="store_true", help="retrain even if unchanged")
    cli_registry.add_commands(add)
    score = add("score", _score, "score a folder of images with the champion (batch)")
    score.add_argument("--images", required=True, help="folder of images")
    score.add_argument("--source", help="label stored with the predictions (default: folder)")
    score.add_argument("--batch-id", help="a rerun with the same id replaces its predictions "
                       "(default: derived from the source and the files)")  # fmt: skip
    score.add_argument(
        "--dask-workers",
        type=_workers,
        help="0: in this process; N: on Dask with N local workers (default: by folder size)",
    )
    drift = add("drift", _drift, "check production predictions for drift; alert")
    drift.add_argument("--window-hours", type=_hours)
    drift.add_argument("--source")
    drift.add_argument("--images", help="score this folder first, then check it")
    aud = add("audit", _audit, "measure the champion on labelled production photos")
    aud.add_argument("--images", required=True, help="folder with images/ and labels/")
    aud.add_argument("--source", help="its name in the report and alert (default: folder)")
    aud.add_argument("--min-images", type=_photos, default=30,
                     help="a tone group is reported from this many photos")  # fmt: skip
    al = add("alerts", _alerts, "list recent alerts; optionally fail on a severity")
    al.add_argument("--since-hours", type=_hours, default=24.0)
    al.add_argument("--fail-on", choices=["warning", "critical"])
    serve = add("serve", _serve, "HTTP inference service on the champion")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=_port, default=8080)
    up = add("up", _plane, "start Prefect + MLflow servers, deploy flows, start a worker")
    up.add_argument("--no-worker", action="store_true")
    up.add_argument(
        "--profile",
        choices=["local", "team"],
        help="team: PostgreSQL for every SQL store, S3 for artifacts and the DVC remote",
    )
    add("down", _plane, "stop what `skintwin up` started")
    add("status", _plane, "show what `skintwin up` started")
    add("demo", _demo, "generate data, train, promote, score two batches, check drift")
    rep = add("report", _report, "a pull request's report: metrics diff, gate, plots (CML)")
    rep.add_argument("--base", default="main", help="git revision to compare with")
    rep.add_argument("--out", help="folder for report.md and its pictures (reports/pr)")
    add("plots", _plots, "dvc plots show with Vega inlined: PR curve, confusion, training")
    add("where", _where, "print where to look: UIs, reports, registry")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return run_main(lambda: args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
