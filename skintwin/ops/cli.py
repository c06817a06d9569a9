"""Skin-Twin MLOps: train, gate, serve and monitor skin-lesion detectors (`skintwin --help`)."""

from __future__ import annotations

import argparse
import json
import sys

from skintwin.project import ProjectPaths
from skintwin.runtime import run_main


def _paths(args: argparse.Namespace) -> ProjectPaths:
    return ProjectPaths.find(args.project_dir)


def _print(obj: object) -> None:
    print(json.dumps(obj, indent=2, default=str))


def _train(args: argparse.Namespace) -> None:
    from flows.training import training_flow

    out = training_flow(args.data_path, str(_paths(args).root), args.force_train)
    _print(out["decision"])


def _promote(args: argparse.Namespace) -> None:
    from skintwin.errors import SkinTwinError
    from skintwin.registry import promotion

    paths = _paths(args)
    if args.approve is None:
        _print(promotion.gate(paths, promotion.register(paths)))
    elif not (args.reason or "").strip():
        raise SkinTwinError("promote --approve: say why with --reason (kept in the history)")
    else:
        _print(promotion.approve(paths, args.approve, args.reason))


def _registry(args: argparse.Namespace) -> tuple[ProjectPaths, str]:
    """The project and the registered model's name, with tracking configured."""
    from skintwin.params import load_params
    from skintwin.training.tracking import configure_tracking

    paths = _paths(args)
    configure_tracking(paths.root, create=False)
    return paths, args.model_name or load_params(paths.params).promote.model_name


def _lineage(args: argparse.Namespace) -> None:
    from skintwin.registry.lineage import lineage_card

    _, name = _registry(args)
    print(lineage_card(name, alias=args.alias, version=args.version))


def _history(args: argparse.Namespace) -> None:
    from skintwin.errors import SkinTwinError
    from skintwin.registry import aliases

    paths, name = _registry(args)
    log = aliases.history(paths.root)
    if args.verify:
        problems = aliases.verify(paths.root, name)
        if problems:
            raise SkinTwinError("registry history: " + "; ".join(problems))
        print(f"registry history intact: {log.count()} events; live aliases agree")
    elif args.at is not None:
        found = log.version_at(name, args.alias, args.at)
        print(f"{name}@{args.alias} at {_iso(args.at)}: {f'v{found}' if found else 'not set'}")
    else:
        for event in log.events(name):
            print(event.line())


def _rollback(args: argparse.Namespace) -> None:
    from skintwin.registry import aliases

    paths, name = _registry(args)
    print(aliases.rollback(paths.root, name, args.to, args.reason).line())


def _score(args: argparse.Namespace) -> None:
    from flows.batch_inference import batch_inference_flow

    _print(batch_inference_flow(args.images, args.source, str(_paths(args).root)))


def _drift(args: argparse.Namespace) -> None:
    from flows.drift import drift_flow

    out = drift_flow(args.window_hours, args.source, args.images, str(_paths(args).root))
    verdict = {"drift_detected": out["result"]["drift_detected"]}
    _print({k: out[k] for k in ("alert", "report_dir")} | verdict)


def _alerts(args: argparse.Namespace) -> None:
    import time

    from skintwin.errors import SkinTwinError
    from skintwin.monitoring.alerts import SEVERITY_RANK, recent_alerts
    from skintwin.monitoring.monitor import ModelMonitor

    paths = _paths(args)
    since = time.time() - args.since_hours * 3600
    found = recent_alerts(paths.alerts, since)
    for a in found:
        print(f"{a['time_iso']}  {a['severity']:8} {a['kind']}: {a['summary']}")
    # a condition alerted earlier and found again since (de-duplicated) is still on
    ongoing = ModelMonitor(project_dir=paths.root).store.ongoing_alerts(since)
    for c in ongoing:
        print(f"ongoing           {c['severity']:8} {c['key']} (first alerted {_iso(c['time'])})")
    if not found and not ongoing:
        print(f"no alerts in the last {args.since_hours:g} h")
    levels = [a["severity"] for a in found] + [c["severity"] for c in ongoing]
    worst = max((SEVERITY_RANK[s] for s in levels), default=-1)
    if args.fail_on and worst >= SEVERITY_RANK[args.fail_on]:
        raise SkinTwinError(f"an alert of severity ≥ {args.fail_on} is raised or ongoing")


def _iso(t: float) -> str:
    import time

    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def _when(text: str) -> float:
    """An ISO 8601 time (UTC unless it says otherwise) as Unix seconds (argparse type)."""
    from datetime import UTC, datetime

    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        example = "2026-05-01T10:00Z"
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO time ({example})") from None
    return (t if t.tzinfo else t.replace(tzinfo=UTC)).timestamp()


def _hours(text: str) -> float:
    """A positive, finite number of hours (argparse type)."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value <= 24 * 366:
        raise argparse.ArgumentTypeError(f"{text!r} is not 0 < hours ≤ 8784")
    return value


def _version(text: str) -> str:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a version number (1, 2, ...)")
    return str(int(text))


def _serve(args: argparse.Namespace) -> None:
    from skintwin.serving.app import serve

    serve(args.host, args.port, str(_paths(args).root))


def _plane(args: argparse.Namespace) -> None:
    from skintwin.ops import plane

    p = plane.plane(_paths(args).root)
    if args.command == "up":
        _print(plane.up(p, worker=not args.no_worker))
        print(f"\nexport PREFECT_API_URL={p.prefect_api} MLFLOW_TRACKING_URI={p.mlflow_uri}")
    elif args.command == "down":
        print("stopped:", ", ".join(plane.down(p)) or "nothing was running")
    else:
        _print(plane.status(p))


def _demo(args: argparse.Namespace) -> None:
    from skintwin.ops.demo import print_demo, run_demo

    paths = _paths(args)
    print_demo(run_demo(paths))
    _where(args)


def _where(args: argparse.Namespace) -> None:
    from skintwin.ops.demo import where

    print(where(_paths(args)))


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
    pro = add("promote", _promote, "register the evaluated candidate and apply the gate")
    pro.add_argument("--approve", type=_version, help="a human promotes this version instead")
    pro.add_argument("--reason", help="with --approve: why (kept in the history)")
    lin = add("lineage", _lineage, "print a version's lineage card (default: the champion)")
    lin.add_argument("--alias", default="champion")
    lin.add_argument("--version")
    lin.add_argument("--model-name")
    hist = add("history", _history, "list every alias move; --at: who was champion then")
    hist.add_argument("--at", type=_when, help="an ISO time: the version the alias had then")
    hist.add_argument("--alias", default="champion")
    hist.add_argument("--verify", action="store_true", help="check the hash chain")
    hist.add_argument("--model-name")
    back = add("rollback", _rollback, "move champion back to an older version (an event)")
    back.add_argument("--to", required=True, type=_version, help="the older version")
    back.add_argument("--reason", required=True, help="why (kept in the history)")
    back.add_argument("--model-name")
    score = add("score", _score, "score a folder of images with the champion (batch)")
    score.add_argument("--images", required=True, help="folder of images")
    score.add_argument("--source", help="label stored with the predictions (default: folder)")
    drift = add("drift", _drift, "check production predictions for drift; alert")
    drift.add_argument("--window-hours", type=_hours)
    drift.add_argument("--source")
    drift.add_argument("--images", help="score this folder first, then check it")
    al = add("alerts", _alerts, "list recent alerts; optionally fail on a severity")
    al.add_argument("--since-hours", type=_hours, default=24.0)
    al.add_argument("--fail-on", choices=["warning", "critical"])
    serve = add("serve", _serve, "HTTP inference service on the champion")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    up = add("up", _plane, "start Prefect + MLflow servers, deploy flows, start a worker")
    up.add_argument("--no-worker", action="store_true")
    add("down", _plane, "stop what `skintwin up` started")
    add("status", _plane, "show what `skintwin up` started")
    add("demo", _demo, "generate data, train, promote, score two batches, check drift")
    add("where", _where, "print where to look: UIs, reports, registry")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return run_main(lambda: args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
