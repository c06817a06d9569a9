"""Training benchmarks: the flow against a plain `yolo train`, no-op repro, repeat run.

Both sides train on the same preprocessed data with the same settings, in the same run.
The one-off Prefect API start is excluded (a trivial flow warms it first).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from bench.common import Row, timed

SIZES = {
    "small": {"n_images": 120, "image_size": 160, "epochs": 8, "imgsz": 128, "min_test": 0},
    "default": {"n_images": 360, "image_size": 256, "epochs": 30, "imgsz": 192, "min_test": 25},
}


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def _sh(cmd: list[str], cwd: Path) -> None:
    subprocess.run(
        cmd, cwd=cwd, env=_env(), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def _project(work: Path, size: str, device: str = "cpu", seed: int | None = None) -> Path:
    """A scratch project of this size; `seed` (when given) draws other demo photos, splits
    them and trains from it: another model on the same recipe."""
    from skintwin.ops.scratch import SOURCE, scratch_project

    s = SIZES[size]
    params = yaml.safe_load((SOURCE / "params.yaml").read_text())
    if seed is not None:
        for section in ("generate", "preprocess", "train"):
            params[section]["seed"] = seed
    params["generate"].update(n_images=s["n_images"], image_size=s["image_size"])
    params["train"].update(epochs=s["epochs"], imgsz=s["imgsz"], device=device)
    params["preprocess"]["min_test_per_group"] = s["min_test"]
    params["evaluate"]["imgsz"] = s["imgsz"]
    return scratch_project(work / "project", params)


def trained_project(work: Path, size: str, device: str = "cpu", seed: int | None = None) -> Path:
    """Only the project with its trained champion, for the benchmarks that need a model
    but not the training figures (one flow run, no plain `yolo train` beside it)."""
    from flows.training import training_flow

    root = _project(work, size, device, seed)
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{root / 'mlflow.db'}"
    training_flow(project_dir=str(root))
    return root


_CHAMPION = """
import sys
from pathlib import Path
from skintwin.app import ModelRegistry
from skintwin.project import ProjectPaths
from skintwin.registry.approval import approve
registry = ModelRegistry(project_dir=sys.argv[1])
out = registry.register_yolo_model(model_path=sys.argv[2])
if not out["decision"]["promote"]:  # a weak small-size model: a human's override makes it so
    approve(ProjectPaths(Path(sys.argv[1])), out["version"], "bench: a champion to beat")
"""  # in its own process: the flow's process imports what it needs itself


_YOLO = "import sys; from ultralytics.cfg import entrypoint; sys.exit(entrypoint())"  # `yolo`


def _plain_command(root: Path, work: Path, n: int) -> list[str]:
    """`yolo train` with the project's train settings, on its preprocessed data (the `yolo`
    script's own two lines, run by this interpreter: a `pip install --target` has no script
    on PATH). Precision as the flow's trainer sets it: `train.amp` means bfloat16 on a GPU."""
    from ultralytics.utils.torch_utils import select_device

    from skintwin.model.trainer import amp_mode

    t = yaml.safe_load((root / "params.yaml").read_text())["train"]
    args = {k: v for k, v in t.items() if k not in ("model", "augment")} | t["augment"]
    args["amp"] = amp_mode(select_device(str(t["device"]), verbose=False), t.get("amp", True))
    return [
        sys.executable,
        "-c",
        _YOLO,
        "detect",
        "train",
        f"data={root / 'data/processed/data.yaml'}",
        f"model={t['model']}",
        f"project={work / 'plain'}",
        f"name={n}",
        "exist_ok=True",
        *[f"{k}={v}" for k, v in args.items()],
    ]


def run(
    work: Path, size: str, device: str = "cpu", seed: int | None = None
) -> tuple[list[Row], Path]:
    """The rows, and the project whose trained champion the serving benchmark reuses.

    Flow and plain run in the order plain, flow, flow, plain: the machine's speed drifts
    (±10% from one run to the next here), and this order cancels a steady drift from the
    ratio of the totals. The second flow run retrains (`--force-train`) and evaluates again.
    """
    from prefect import flow

    from flows.training import training_flow

    root = _project(work, size, device, seed)
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{root / 'mlflow.db'}"
    _sh([sys.executable, "-m", "dvc", "repro", "preprocess"], root)
    print(f"training on {_device_name(device)}")
    plain = [timed(lambda: _sh(_plain_command(root, work, 1), work))[0]]
    # the plain run's model is the champion the flow's gate measures again on the test split
    _sh([sys.executable, "-c", _CHAMPION, str(root), str(work / "plain/1/weights/best.pt")], root)

    @flow
    def warm() -> None:
        """Start the ephemeral Prefect API outside the measurement."""

    warm()
    first_s, first = timed(lambda: training_flow(project_dir=str(root)))
    epochs = {"flow": [_epochs_s(root / "models/train")]}
    steps = ", ".join(f"{k} {v:.1f} s" for k, v in first["seconds"].items())
    print(f"training flow, where the time went: {steps}; plain yolo train {plain[0]:.1f} s")
    print(_outcome(root, first))
    repeat_s, _ = timed(lambda: training_flow(project_dir=str(root)))
    noop_s, _ = timed(lambda: _sh([sys.executable, "-m", "dvc", "repro"], root))
    second_s, second = timed(lambda: training_flow(project_dir=str(root), force_train=True))
    if {"train", "evaluate"} - {r for s in second["stages"] for r in s["ran"]}:
        raise RuntimeError(f"the second flow run did not retrain and evaluate: {second}")
    epochs["flow"].append(_epochs_s(root / "models/train"))
    plain.append(timed(lambda: _sh(_plain_command(root, work, 2), work))[0])
    epochs["plain"] = [_epochs_s(work / "plain" / str(n)) for n in (1, 2)]
    print(f"training flow {first_s:.1f} s, {second_s:.1f} s; plain yolo train {plain[0]:.1f} s, "
          f"{plain[1]:.1f} s (in the order plain, flow, flow, plain)")  # fmt: skip
    return [
        Row("training flow vs plain yolo train (2 each)", first_s + second_s, "s", sum(plain),
            "yolo train", "≤ 1.05×", (first_s + second_s) / sum(plain) <= 1.05),
        Row("  first pair: flow vs the plain run before", first_s, "s", plain[0], "yolo train"),
        Row("  second pair: flow vs the plain run after", second_s, "s", plain[1], "yolo train"),
        *_epoch_rows(epochs, [first_s, second_s], plain),
        Row("repeat flow run, nothing changed", repeat_s, "s", first_s, "first run", "≤ 0.15×",
            repeat_s / first_s <= 0.15),
        Row("no-op dvc repro (whole DAG)", noop_s, "s", None, "", "≤ 3 s", noop_s <= 3.0),
        *_steps(first["seconds"], plain[0]),
    ], root  # fmt: skip


def _device_name(device: str) -> str:
    import torch

    if device == "cpu":
        return f"the CPU ({os.cpu_count()} cores)"
    return ", ".join(torch.cuda.get_device_name(int(d)) for d in device.split(","))


def _outcome(root: Path, run: dict) -> str:
    """What the flow's run ended with: its candidate's metric, the export's parity verdict,
    and the gate's decision (the end-to-end path, on whatever device trained it)."""
    import json

    from skintwin.model.onnx import parity_verdict

    test = json.loads((root / "reports/evaluate/metrics.json").read_text())["test"]
    passed, why = parity_verdict(root / "reports/evaluate/parity.json")
    decision = run["decision"]
    return (
        f"candidate v{decision['version']}: mAP50 {test['mAP50']:.3f} on the test split; ONNX "
        f"parity {'passed' if passed else 'failed'} ({why}); gate: "
        f"{'promoted' if decision['promote'] else 'not promoted'} "
        f"({'; '.join(decision['reasons'])})"
    )


def _epochs_s(run_dir: Path) -> float:
    """The epochs' own seconds, as Ultralytics' `results.csv` counts them."""
    import csv

    with (run_dir / "results.csv").open() as fh:
        return float(list(csv.DictReader(fh))[-1]["time"])


def _epoch_rows(epochs: dict, flow_s: list[float], plain_s: list[float]) -> list[Row]:
    """The totals cut in two: the epochs themselves, and everything else around them."""
    flow_e, plain_e = sum(epochs["flow"]), sum(epochs["plain"])
    return [
        Row("  of which the epochs themselves (results.csv)", flow_e, "s", plain_e, "yolo train"),
        Row("  and everything else (start-up, stages, checks)", sum(flow_s) - flow_e, "s",
            sum(plain_s) - plain_e, "yolo train"),
    ]  # fmt: skip


def _steps(seconds: dict[str, float], plain_s: float) -> list[Row]:
    """The first flow run's steps; the flow's own cost read within that one run, immune to
    the machine's speed drifting between the plain run and the flow's."""
    trained = seconds["train"]
    around = sum(seconds.values()) - trained
    return [
        Row("  flow steps around the train stage", around, "s", trained, "the train stage",
            "≤ 0.05×", around / trained <= 0.05),
        *(Row(f"  flow step: {k}", v, "s", *((plain_s, "yolo train") if k == "train" else ()))
          for k, v in seconds.items()),
    ]  # fmt: skip
