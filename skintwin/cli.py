"""`skintwin` command: the operations DVC users and CI run besides `dvc repro`.

skintwin promote                 register + gate the evaluated candidate
skintwin lineage [--version N]   print the lineage card of champion (or a version)
skintwin where                   print where to look: UIs, reports, registry
"""

from __future__ import annotations

import argparse
import json

from skintwin.cli_util import run_main
from skintwin.project import resolve_root


def _promote(args: argparse.Namespace) -> None:
    from skintwin import promotion

    root = resolve_root(args.project_dir)
    decision = promotion.gate(root, promotion.register(root))
    print(json.dumps(decision, indent=2, default=str))


def _lineage(args: argparse.Namespace) -> None:
    from skintwin.params import load_params
    from skintwin.registry import lineage_card
    from skintwin.tracking import configure_tracking

    root = resolve_root(args.project_dir)
    configure_tracking(root)
    name = args.model_name or load_params(root / "params.yaml").promote.model_name
    print(lineage_card(name, alias=args.alias, version=args.version))


def _where(args: argparse.Namespace) -> None:
    from skintwin.params import load_params
    from skintwin.registry import alias_version
    from skintwin.store import default_url
    from skintwin.tracking import configure_tracking

    root = resolve_root(args.project_dir)
    uri = configure_tracking(root)
    name = load_params(root / "params.yaml").promote.model_name
    champ = alias_version(name)
    print(f"""
Champion      : {f"models:/{name}@champion (version {champ.version})" if champ else "none yet"}
MLflow UI     : make mlflow-ui    -> http://127.0.0.1:5000  (tracking: {uri})
Prefect UI    : make prefect-ui   -> http://127.0.0.1:4200  (flow runs, task runs, artifacts)
Test metrics  : reports/evaluate/metrics.json   (dvc metrics show)
Charts        : reports/evaluate/charts/*.png; dvc plots show -> dvc_plots/index.html
Data report   : reports/validate/data_report.json
Lineage       : skintwin lineage
Batch results : reports/batch/<time>-<source>/predictions.csv
Drift reports : reports/drift/<time>-<source>/drift_report.html
Alerts        : .monitoring/alerts/*.json
Predictions   : {default_url(root)}""")


def _alerts(args: argparse.Namespace) -> None:
    import time

    from skintwin.alerts import SEVERITY_RANK
    from skintwin.errors import SkinTwinError

    root = resolve_root(args.project_dir)
    since = time.time() - args.since_hours * 3600
    found = []
    for path in sorted((root / ".monitoring" / "alerts").glob("*-*.json")):
        alert = json.loads(path.read_text())
        if alert.get("time", 0) >= since:
            found.append(alert)
            print(
                f"{alert['time_iso']}  {alert['severity']:8} {alert['kind']}: {alert['summary']}"
            )
    if not found:
        print(f"no alerts in the last {args.since_hours:g} h")
    worst = max((SEVERITY_RANK[a["severity"]] for a in found), default=-1)
    if args.fail_on and worst >= SEVERITY_RANK[args.fail_on]:
        raise SkinTwinError(f"an alert of severity ≥ {args.fail_on} was raised")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="skintwin", description=__doc__.splitlines()[0])
    parser.add_argument("--project-dir", help="project folder holding dvc.yaml")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("promote", help="register the evaluated candidate and apply the gate")
    lin = sub.add_parser("lineage", help="print a version's lineage card")
    lin.add_argument("--alias", default="champion")
    lin.add_argument("--version")
    lin.add_argument("--model-name")
    sub.add_parser("where", help="print where to look after a run")
    al = sub.add_parser("alerts", help="list recent alerts; optionally fail on a severity")
    al.add_argument("--since-hours", type=float, default=24.0)
    al.add_argument("--fail-on", choices=["warning", "critical"])
    args = parser.parse_args(argv)
    handler = {"promote": _promote, "lineage": _lineage, "where": _where, "alerts": _alerts}[
        args.command
    ]
    return run_main(lambda: handler(args))


if __name__ == "__main__":
    raise SystemExit(main())
