"""The README's main job on the embedded defaults.

Generate the demo dataset and train through the training flow (champion), then generate
two production-like batches (one from the training distribution, one under darker
lighting), score each with the batch-inference flow, run the drift flow on each, and print
both verdicts and where to look.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from skintwin.project import resolve_root

log = logging.getLogger(__name__)

BATCHES = (("batch-normal", "none", 101), ("batch-lighting", "lighting", 102))


def run_demo(root: Path, batch_images: int = 80) -> dict:
    """Returns the training decision and, per batch, the drift verdict and report folder."""
    from flows.batch_inference import batch_inference_flow
    from flows.drift import drift_flow
    from flows.training import training_flow
    from skintwin.params import load_params
    from skintwin.steps.generate import run_generate

    training = training_flow(project_dir=str(root))
    params = load_params(root / "params.yaml")
    verdicts = {}
    for source, shift, seed in BATCHES:
        gen = params.generate.model_copy(update={"n_images": batch_images, "seed": seed})
        folder = root / "data" / "batches" / source
        run_generate(folder, gen, shift=shift, labels=False, workers=params.preprocess.workers)
        batch_inference_flow(str(folder / "images"), source=source, project_dir=str(root))
        drift = drift_flow(source=source, project_dir=str(root))
        verdicts[source] = {
            "shift": shift,
            "drift": drift["result"]["drift_detected"],
            "drifted_columns": drift["result"]["drifted_columns"],
            "alert": drift["alert"]["severity"] if drift["alert"] else None,
            "report": str(Path(drift["report_dir"]).relative_to(root)),
        }
    return {"decision": training["decision"], "batches": verdicts}


def main() -> int:
    from skintwin.cli_util import run_main

    def body() -> None:
        root = resolve_root()
        out = run_demo(root)
        d = out["decision"]
        print("\n=== Skin-Twin demo ===")
        print(
            f"candidate v{d['version']}: {'promoted' if d['promote'] else 'not promoted'}"
            f" — {'; '.join(d['reasons'])}"
        )
        for source, v in out["batches"].items():
            print(
                f"{source:15} shift={v['shift']:9} drift={'YES' if v['drift'] else 'no':3} "
                f"alert={v['alert'] or '-':8} report={v['report']}/drift_report.html"
            )
            if v["drifted_columns"]:
                print(f"{'':15} drifted: {', '.join(v['drifted_columns'])}")
        log.debug(json.dumps(out, default=str))

    return run_main(body)


if __name__ == "__main__":
    raise SystemExit(main())
