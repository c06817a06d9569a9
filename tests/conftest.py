"""Shared fixtures: offline environment, tiny parameters, generated datasets, temp projects."""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session", autouse=True)
def _offline(tmp_path_factory: pytest.TempPathFactory) -> None:
    """No downloads, no telemetry; Ultralytics settings in a throwaway folder."""
    from skintwin.env import configure_offline

    os.environ["YOLO_CONFIG_DIR"] = str(tmp_path_factory.mktemp("yolo"))
    configure_offline(REPO)


@pytest.fixture(scope="session")
def base_params() -> dict:
    return yaml.safe_load((REPO / "params.yaml").read_text())


@pytest.fixture
def tiny_params(base_params: dict) -> dict:
    """The tiny configuration: few small images, 1 epoch, CPU."""
    p = copy.deepcopy(base_params)
    p["generate"].update(n_images=60, image_size=128, seed=3)
    p["validate"]["min_images_per_class"] = 3
    p["preprocess"]["workers"] = 1
    p["train"].update(epochs=1, imgsz=64, batch=8, workers=0, plots=False)
    p["evaluate"]["imgsz"] = 64
    p["promote"].update(floor=0.0, min_group_images=3)
    return p


def params_model(raw: dict):
    from skintwin.params import parse_params

    return parse_params(raw)


@pytest.fixture(scope="session")
def demo_dataset(tmp_path_factory: pytest.TempPathFactory, base_params: dict) -> Path:
    """A generated 120-image dataset (YOLO flat layout), shared read-only by tests."""
    from skintwin.params import GenerateParams
    from skintwin.steps.generate import run_generate

    gen = GenerateParams.model_validate(
        {**base_params["generate"], "n_images": 120, "image_size": 160, "seed": 11}
    )
    out = tmp_path_factory.mktemp("demo") / "dataset"
    run_generate(out, gen, workers=2)
    return out


def run(cmd: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    """Run a command with this interpreter's environment first on PATH."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"{cmd} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def dvc(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    return run([sys.executable, "-m", "dvc", *args], cwd=cwd, check=check)


def make_project(root: Path, params: dict, with_flows: bool = False) -> Path:
    """A throwaway copy of the project: its own git repo, DVC, params and MLflow database.

    with_flows also copies flows/, tasks/ and prefect.yaml, for `prefect deploy`.
    """
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "dvc.yaml", root / "dvc.yaml")
    packages = ("skintwin", "flows", "tasks") if with_flows else ("skintwin",)
    for package in packages:
        shutil.copytree(
            REPO / package, root / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    if with_flows:
        shutil.copy(REPO / "prefect.yaml", root / "prefect.yaml")
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(["git", "init", "-q"], cwd=root)
    run(["git", "config", "user.email", "ci@example.com"], cwd=root)
    run(["git", "config", "user.name", "ci"], cwd=root)
    dvc("init", "-q", cwd=root)
    dvc("config", "core.analytics", "false", cwd=root)
    for name in (".gitignore", ".dvcignore"):
        shutil.copy(REPO / name, root / name)
    run(["git", "add", "-A"], cwd=root)
    run(["git", "commit", "-qm", "project"], cwd=root)
    return root


@pytest.fixture
def project(tmp_path: Path, tiny_params: dict, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A tiny project with its own MLflow SQLite database."""
    import mlflow

    root = make_project(tmp_path / "project", tiny_params)
    uri = f"sqlite:///{root / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)  # the process-wide URI would otherwise outlive the test
    return root


def write_image(path: Path, seed: int, size: int = 48) -> None:
    """A small valid JPEG whose bytes depend on `seed` (so no accidental duplicates)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(path)


def write_dataset(
    root: Path,
    n: int = 6,
    names: tuple[str, ...] = ("acne", "mole"),
    split_dirs: tuple[str, ...] = (),
) -> Path:
    """A clean YOLO dataset: `n` images per split, every class in every image.

    split_dirs=() writes the flat layout; ("train", "valid") writes the export layout with
    Roboflow-style `../train/images` paths in data.yaml.
    """
    root.mkdir(parents=True, exist_ok=True)
    groups = [(root / s / "images", root / s / "labels") for s in split_dirs] or [
        (root / "images", root / "labels")
    ]
    seed = 0
    for images, labels in groups:
        labels.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            seed += 1
            write_image(images / f"img{i}.jpg", seed)
            rows = [f"{c} 0.{3 + c} 0.5 0.2 0.2" for c in range(len(names))]
            (labels / f"img{i}.txt").write_text("\n".join(rows) + "\n")
    doc: dict = {"names": list(names)}
    for s in split_dirs:
        doc[{"valid": "val"}.get(s, s)] = f"../{s}/images"
    (root / "data.yaml").write_text(yaml.safe_dump(doc))
    return root


from skintwin.ops import wait_http  # noqa: E402  (re-exported for the tests)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_service(project: Path, port: int, log: Path, **env: str) -> subprocess.Popen:
    """`python -m skintwin.service` on 127.0.0.1:port, healthy when this returns."""
    with log.open("w") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "skintwin.service",
                "--port",
                str(port),
                "--project-dir",
                str(project),
            ],
            env=dict(os.environ, **env),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_http(f"http://127.0.0.1:{port}/health", timeout=120)
    except Exception:
        proc.terminate()
        raise RuntimeError(f"service did not start:\n{log.read_text()[-2000:]}") from None
    return proc


class MlflowServer:
    """A real `mlflow server` on loopback with a SQLite backend; stop() frees its port."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        workdir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "mlflow"),
                "server",
                "--backend-store-uri",
                f"sqlite:///{workdir / 'mlflow.db'}",
                "--artifacts-destination",
                str(workdir / "artifacts"),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--workers",
                "1",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_http(f"{self.url}/health")

    def stop(self) -> None:
        import signal

        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
