"""The training flow: validate → preprocess → train → evaluate → register → gate.

Each file-to-file step reproduces its DVC stage, so DVC decides what is stale and a run
leaves `dvc.lock` current; registration and the promotion gate run after the stages.

    skintwin train                            # the project's dataset (params.yaml)
    skintwin train --data-path DIR            # train on another dataset folder
    python -m flows.training [--data-path DIR] [--force-train]   # the same
"""

from __future__ import annotations

import argparse
import queue
import time
from contextlib import contextmanager
from pathlib import Path

from prefect import flow

from skintwin.io import held
from skintwin.params.data_path import set_data_path
from skintwin.project import ProjectPaths, resolve_root
from tasks.dvc_stages import put_back, reproduce_stage, snapshot
from tasks.registry_tasks import (
    gate_candidate,
    measure_champion,
    publish_summary,
    read_evaluation,
    register_candidate,
)

STAGES = ("validate", "preprocess", "train", "evaluate")
WAIT_S = 3 * 3600  # for the run ahead of this one to end


@flow(name="training", log_prints=True)
def training_flow(
    data_path: str | None = None, project_dir: str | None = None, force_train: bool = False
) -> dict:
    """Turn a dataset into an evaluated, registered and gated candidate.

    Args:
        data_path: dataset folder to train on (recorded in params.yaml as `data.path`,
            like `dvc exp run -S`, and put back if it fails validation or preprocessing);
            default: the one params.yaml names.
        project_dir: the project holding dvc.yaml; default: the current one.
        force_train: retrain even when DVC finds nothing changed.

    One training run at a time per project (the manual and the CI deployment, a retrain
    on drift): a second waits for the first, which holds params.yaml and the stages.
    """
    root = str(resolve_root(project_dir))
    with held(ProjectPaths(Path(root)).training_lock, "training", WAIT_S, waiting=_waiting):
        return _train(root, data_path, force_train)


def _waiting(holder: str) -> None:
    print(f"another training run holds this project ({holder}): waiting for it to end")


def _train(root: str, data_path: str | None, force_train: bool) -> dict:
    before = snapshot(Path(root))
    changed = set_data_path(Path(root), data_path)
    try:
        stages = [reproduce_stage(s, root) for s in STAGES[:2]]
    except BaseException:
        if changed:  # a dataset that fails its checks is not left as the one to train on
            put_back(Path(root), before, STAGES[:2])
        raise
    # a new candidate will meet the champion: measure that on the test split (fixed since
    # preprocess) while the train stage runs, whose PyTorch leaves the second core idle
    started: queue.SimpleQueue[bool] = queue.SimpleQueue()
    train = reproduce_stage.submit("train", root, force=force_train, started=started)
    champion = measure_champion.submit(root) if _started(train, started) else None
    stages.append(train.result())
    stages.append(reproduce_stage("evaluate", root))
    seconds = {s["stage"]: s["seconds"] for s in stages}
    with _clock(seconds, "register"):
        evaluation = read_evaluation(root)
        candidate = register_candidate(root, evaluation)
    with _clock(seconds, "gate"):
        measured = _result_or_none(champion)
        decision = gate_candidate(root, candidate, evaluation, measured)
    publish_summary(stages, evaluation, decision)
    print("where the time went: " + ", ".join(f"{k} {v:.1f} s" for k, v in seconds.items()))
    return {"stages": stages, "candidate": candidate, "decision": decision, "seconds": seconds}


def _started(future, started: queue.SimpleQueue) -> bool:
    """Whether the stage task's DVC started running its stage; False as well when the task
    ended before its code could say (Prefect could not start it): never waits forever."""
    while True:
        try:
            return started.get(timeout=1.0)
        except queue.Empty:
            if future.state.is_final():
                return not started.empty() and started.get()


def _result_or_none(future):
    """The champion measured beside the train stage; None (the gate measures it itself)
    when there was none or it failed."""
    if future is None:
        return None
    try:
        return future.result()
    except Exception as exc:  # the gate's own measurement says what is wrong, if anything
        print(f"champion not measured beside the train stage ({exc}); the gate measures it")
        return None


@contextmanager
def _clock(into: dict, name: str):
    start = time.perf_counter()
    try:
        yield
    finally:
        into[name] = round(time.perf_counter() - start, 2)


def main(argv: list[str] | None = None) -> int:
    from skintwin.runtime import run_main

    parser = argparse.ArgumentParser(description="Run the Skin-Twin training flow.")
    parser.add_argument("--data-path", help="dataset folder (default: params.yaml data.path)")
    parser.add_argument("--project-dir", help="project folder holding dvc.yaml")
    parser.add_argument("--force-train", action="store_true")
    args = parser.parse_args(argv)
    return run_main(lambda: training_flow(args.data_path, args.project_dir, args.force_train))


if __name__ == "__main__":
    raise SystemExit(main())
