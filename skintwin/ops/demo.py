"""The README's main job on the embedded defaults, and where to look afterwards.

Generate the demo dataset and train through the training flow (champion), then generate
two production-like batches (one from the training distribution, one under darker
lighting), score each with the batch-inference flow, and run the drift flow on each.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from skintwin.errors import SkinTwinError
from skintwin.project import ProjectPaths

BATCHES = (("batch-normal", "none", 101), ("batch-lighting", "lighting", 102))


def run_demo(paths: ProjectPaths, batch_images: int = 200) -> dict:
    """Returns the training decision and, per batch, the drift verdict and report folder."""
    from flows.batch_inference import batch_inference_flow
    from flows.drift import drift_flow
    from flows.training import training_flow
    from skintwin.ops.plots_page import show
    from skintwin.params import load_params
    from skintwin.steps.generate import run_generate

    root = str(paths.root)
    _generate_while_prefect_starts(paths.root)
    training = training_flow(project_dir=root)
    params = load_params(paths.params)
    verdicts = {}
    for source, shift, seed in BATCHES:
        gen = params.generate.model_copy(update={"n_images": batch_images, "seed": seed})
        folder = paths.batches / source
        run_generate(folder, gen, shift=shift, labels=False, workers=params.preprocess.workers)
        batch_inference_flow(str(folder / "images"), source=source, project_dir=root)
        drift = drift_flow(source=source, project_dir=root)
        verdicts[source] = {
            "shift": shift,
            "drift": drift["result"]["drift_detected"],
            "drifted_columns": drift["result"]["drifted_columns"],
            "moved": drift["result"].get("moved", {}),
            "performance": drift["result"].get("performance", {}),
            "alert": alert_shown(drift),
            "report": str(Path(drift["report_dir"]).relative_to(paths.root)),
        }
    plots = show(paths.root)  # PR curve, confusion, training curves; renders offline
    return {"decision": training["decision"], "batches": verdicts, "plots": str(plots)}


def _generate_while_prefect_starts(root: Path) -> None:
    """Generate the demo dataset (its DVC stage, which the training flow then finds done)
    while Prefect's temporary API server starts in a thread: on a fresh `PREFECT_HOME` that
    takes ~15 s, mostly migrations on one core, and the flow would wait for it first."""
    import subprocess
    import sys
    import threading

    from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_EPHEMERAL_ENABLED

    from tasks.dvc_stages import stage_env

    starting = None
    if not PREFECT_API_URL.value() and PREFECT_SERVER_EPHEMERAL_ENABLED.value():
        from prefect.server.api.server import SubprocessASGIServer

        starting = threading.Thread(target=_start_quietly, args=(SubprocessASGIServer(),))
        starting.start()
    try:
        print("generating the demo dataset (dvc repro generate)", flush=True)
        cmd = [sys.executable, "-m", "dvc", "repro", "generate"]
        code = subprocess.run(cmd, cwd=root, env=stage_env()).returncode
        if code:
            raise SkinTwinError(f"`dvc repro generate` failed (exit {code}); its output is above")
    finally:
        if starting is not None:
            starting.join()  # a flow must not find a server that is still starting


def _start_quietly(server) -> None:
    """Start the server; on failure the flow's own start tries again and says why."""
    with contextlib.suppress(Exception):
        server.start()


def alert_shown(drift: dict) -> str | None:
    """The raised alert's severity; "ongoing" for drift alerted already (a second demo
    within `monitor.dedup_hours` raises nothing new), as the flow's artifact says: the
    demo printed "-", no alert, for a critical drift."""
    if drift["alert"]:
        return drift["alert"]["severity"]
    return "ongoing" if drift["result"]["drift_detected"] else None


def print_demo(out: dict) -> None:
    from skintwin.monitoring.performance import estimate_line
    from skintwin.monitoring.summaries import moved_line

    d = out["decision"]
    print("\n=== Skin-Twin demo ===")
    verdict = "promoted" if d["promote"] else "not promoted"
    print(f"candidate v{d['version']}: {verdict} — {'; '.join(d['reasons'])}")
    for source, v in out["batches"].items():
        print(
            f"{source:15} shift={v['shift']:9} drift={'YES' if v['drift'] else 'no':3} "
            f"alert={v['alert'] or '-':8} report={v['report']}/drift_report.html"
        )
        if v["moved"]:
            print(f"{'':15} moved: {moved_line(v)}")
        print(f"{'':15} {estimate_line(v['performance'])}")


def where(paths: ProjectPaths) -> str:
    """Where to look after a run: the champion, the UIs, reports and stores."""
    from skintwin.monitoring.store import default_url
    from skintwin.params import load_params
    from skintwin.redact import mask_url
    from skintwin.registry.client import alias_version
    from skintwin.training.tracking import configure_tracking

    name = load_params(paths.params).promote.model_name
    try:
        uri = configure_tracking(paths.root, create=False)
    except SkinTwinError:  # nothing trained yet: say so, without creating a database
        uri, champ = f"sqlite:///{paths.mlflow_db} (not created yet)", None
    else:
        champ = alias_version(name)
    champion = f"models:/{name}@champion (version {champ.version})" if champ else "none yet"
    card = f"reports/model_card/v{champ.version}/model_card.html" if champ else "none yet"
    return f"""
Champion      : {champion}
MLflow UI     : make mlflow-ui    -> http://127.0.0.1:5000  (tracking: {mask_url(uri)})
Prefect UI    : make prefect-ui   -> http://127.0.0.1:4200  (flow runs, task runs, artifacts)
Test metrics  : reports/evaluate/metrics.json   (dvc metrics show)
Plots page    : dvc_plots/index.html   (skintwin plots: PR curve, confusion, training curves;
                offline, Vega inlined)  charts as PNG: reports/evaluate/charts/
Data report   : reports/validate/data_report.json
Lineage       : skintwin lineage
Model card    : {card}
History       : skintwin history   (every alias move; --at TIME, --verify; skintwin rollback)
Batch results : reports/batch/<time>-<token>-<source>/predictions.csv
Drift reports : reports/drift/<time>-<token>-<source>/drift_report.html
Audits        : reports/audit/<time>-<token>-<source>/audit.md   (skintwin audit, labelled photos)
Alerts        : .monitoring/alerts/*.json   (skintwin alerts)
Predictions   : {mask_url(default_url(paths.root))}"""
