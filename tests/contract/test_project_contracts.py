"""The pieces agree: dvc.yaml commands, params.yaml sections, prefect.yaml entrypoints."""

from __future__ import annotations

import ast
import importlib
import re
import shlex
from pathlib import Path

import pytest
import yaml

from skintwin.params import Params, load_params
from tests.conftest import REPO

DVC = yaml.safe_load((REPO / "dvc.yaml").read_text())
PARAMS = yaml.safe_load((REPO / "params.yaml").read_text())
STAGES = DVC["stages"]


def _lookup(dotted: str) -> object:
    node: object = PARAMS
    for key in dotted.split("."):
        assert isinstance(node, dict) and key in node, f"params.yaml has no '{dotted}'"
        node = node[key]
    return node


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_stage_module_and_deps_exist(stage: str) -> None:
    spec = STAGES[stage]
    argv = shlex.split(spec["cmd"])
    assert argv[:2] == ["python", "-m"]
    module = importlib.import_module(argv[2])
    assert callable(getattr(module, "main", None))
    assert argv[2] == f"skintwin.steps.{stage}", "stage name = module name"
    for dep in spec.get("deps", []):
        if "${" in dep:
            continue
        if dep.endswith(".py"):
            assert (REPO / dep).is_file(), dep


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_stage_params_exist(stage: str) -> None:
    for key in STAGES[stage].get("params", []):
        _lookup(key)
    for ref in re.findall(r"\$\{([^}]+)\}", yaml.safe_dump(STAGES[stage])):
        _lookup(ref)


def test_stage_sections_match_params_sections() -> None:
    fields = {f.alias or name for name, f in Params.model_fields.items()}
    assert set(PARAMS) == fields
    for stage in STAGES:
        assert stage in PARAMS, f"stage {stage} has no params.yaml section"


# Core plumbing does not change what a stage computes: errors, atomic writes, process
# set-up, where files live, masking of secrets, and the typed params loader (the values
# themselves are tracked by `params:`).
PLUMBING = {
    "skintwin/errors.py",
    "skintwin/io.py",
    "skintwin/runtime.py",
    "skintwin/params/__init__.py",
    "skintwin/params/monitor.py",
    "skintwin/params/sections.py",
    "skintwin/project.py",
    "skintwin/redact.py",
}


def _module_file(name: str) -> Path | None:
    base = REPO / Path(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def project_imports(path: Path) -> set[Path]:
    """Project modules `path` imports, at any depth of the file (function bodies too)."""
    found: set[Path] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            project = name.split(".")[0] in ("skintwin", "flows", "tasks")
            if project and (file := _module_file(name)) is not None:
                found.add(file)
    return found


def import_closure(path: Path) -> set[str]:
    """Every project module `path` reaches through imports, directly or not (repo-relative).

    Imports are not followed through plumbing: what only it imports is its own business.
    """
    seen: set[Path] = set()
    todo = [path]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        if current.relative_to(REPO).as_posix() not in PLUMBING:
            todo.extend(project_imports(current) - seen)
    return {p.relative_to(REPO).as_posix() for p in seen}


def _covered(module: str, deps: set[str]) -> bool:
    return any(module == d or module.startswith(d.rstrip("/") + "/") for d in deps)


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_stage_deps_cover_every_module_it_imports(stage: str) -> None:
    """A stage re-runs when any code it runs changes: deps cover its import closure."""
    deps = set(STAGES[stage]["deps"])
    closure = import_closure(REPO / f"skintwin/steps/{stage}.py")
    assert f"skintwin/steps/{stage}.py" in closure
    missing = sorted(m for m in closure - PLUMBING if not _covered(m, deps))
    assert not missing, f"{stage}: deps miss {missing}"


def test_closure_follows_indirect_imports() -> None:
    """The check above sees a module imported only through another one."""
    closure = import_closure(REPO / "skintwin/steps/evaluate.py")
    assert "skintwin/training/evaluation.py" in closure  # imported by the step
    assert "skintwin/data/dataset.py" in closure  # imported by evaluation.py only
    assert "skintwin/model/yolo.py" in closure


def test_project_paths_agree_with_dvc_yaml() -> None:
    """Library code reads stage outputs through ProjectPaths; they are the dvc.yaml outs."""
    from skintwin.project import ProjectPaths

    paths = ProjectPaths(REPO)
    outs = {
        str(next(iter(o)) if isinstance(o, dict) else o)
        for spec in STAGES.values()
        for o in spec.get("outs", [])
    }
    for path in (paths.data_report, paths.processed, paths.train_dir, paths.metrics):
        assert path.relative_to(REPO).as_posix() in outs
    for stage in ("train", "evaluate"):
        assert paths.processed.relative_to(REPO).as_posix() in STAGES[stage]["cmd"]
    assert f"--out {paths.train_dir.relative_to(REPO).as_posix()}" in STAGES["train"]["cmd"]
    assert f"--out {paths.evaluate_dir.relative_to(REPO).as_posix()}" in STAGES["evaluate"]["cmd"]


def test_params_load() -> None:
    load_params(REPO / "params.yaml")


def test_prefect_entrypoints_import_to_flows() -> None:
    from prefect import Flow

    doc = yaml.safe_load((REPO / "prefect.yaml").read_text())
    assert doc["deployments"]
    for dep in doc["deployments"]:
        path, func = dep["entrypoint"].split(":")
        assert path.startswith("flows/")
        module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
        assert isinstance(getattr(module, func), Flow), dep["entrypoint"]


def test_readme_commands_and_ci_agree() -> None:
    readme = (REPO / "README.md").read_text()
    ci = (REPO / ".ci/run").read_text().strip().splitlines()[-1].strip()
    assert ci in readme
    assert "make demo" in readme


def test_a_dep_missing_from_the_closure_is_caught() -> None:
    """Drop a module that evaluate reaches only indirectly: the check names it."""
    deps = set(STAGES["evaluate"]["deps"]) - {"skintwin/data/dataset.py"}
    closure = import_closure(REPO / "skintwin/steps/evaluate.py")
    assert [m for m in sorted(closure - PLUMBING) if not _covered(m, deps)] == [
        "skintwin/data/dataset.py"
    ]


def test_dvc_remote_lies_inside_the_project() -> None:
    """`dvc push` must not write outside the project (the default remote is local)."""
    from skintwin.ops.scratch import dvc

    listed = dvc("remote", "list", cwd=REPO).stdout.split()
    url = Path(listed[1])
    assert url.is_absolute() and REPO.resolve() in url.resolve().parents, url


def test_the_scheduled_drift_check_follows_monitor_window_hours() -> None:
    """A deployment that pins `window_hours` ignores params.yaml's monitor.window_hours on
    every scheduled run (the command line follows it): the daily one pinned 24."""
    doc = yaml.safe_load((REPO / "prefect.yaml").read_text())
    for dep in doc["deployments"]:
        if dep["entrypoint"].startswith("flows/drift.py"):
            assert "window_hours" not in (dep.get("parameters") or {}), dep["name"]
