"""The pieces agree: dvc.yaml commands, params.yaml sections, prefect.yaml entrypoints."""

from __future__ import annotations

import importlib
import re
import shlex

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


def test_helper_modules_imported_by_steps_are_deps() -> None:
    """Every skintwin module a step imports at top level is a dep of its stage."""
    for stage, spec in STAGES.items():
        source = (REPO / f"skintwin/steps/{stage}.py").read_text()
        imported = set(re.findall(r"^from skintwin\.(\w+) import", source, re.M))
        imported -= {"errors", "io", "params", "cli_util"}  # plumbing, not behaviour
        deps = {d for d in spec["deps"] if d.endswith(".py")}
        for module in imported:
            assert f"skintwin/{module}.py" in deps, f"{stage}: skintwin/{module}.py not a dep"


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
