"""The GitHub workflows parse and only call commands this project documents and has."""

from __future__ import annotations

import importlib
import re
import shlex
import shutil

import pytest
import yaml

from tests.conftest import REPO

WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))
MAKE_TARGETS = set(re.findall(r"^([a-z][\w-]*):", (REPO / "Makefile").read_text(), re.M))


def _commands(doc: dict) -> list[str]:
    lines = []
    for job in doc["jobs"].values():
        for step in job["steps"]:
            for line in step.get("run", "").splitlines():
                line = line.strip()
                if line and not line.startswith(("#", "{", "}", "echo", "FORCE=", "if ", "fi")):
                    lines.append(line.split(">>")[0].strip())
    return lines


def test_two_workflows_exist() -> None:
    assert {w.name for w in WORKFLOWS} == {"ml_training.yml", "ml_monitoring.yml"}


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_commands_exist(workflow) -> None:
    doc = yaml.safe_load(workflow.read_text())
    assert doc["jobs"] and (True in doc or "on" in doc)  # YAML 1.1 reads `on:` as True
    from skintwin.ops.cli import main as skintwin_main

    for line in _commands(doc):
        argv = shlex.split(line.replace("$FORCE", ""))
        tool = argv[0].removeprefix(".venv/bin/")
        if tool == "make":
            assert argv[1] in MAKE_TARGETS, line
        elif tool == "python":
            assert argv[1] == "-m", line
            module = importlib.import_module(argv[2])
            assert callable(getattr(module, "main", None)), line
        elif tool == "skintwin":
            with pytest.raises(SystemExit) as done:
                skintwin_main([argv[1], "--help"])
            assert done.value.code == 0, line
        elif tool == "dvc":
            assert shutil.which("dvc") or (REPO / ".venv/bin/dvc").exists(), line
        elif tool == "cml":  # CML's own action installs it on the runner
            steps = [s for job in doc["jobs"].values() for s in job["steps"]]
            assert any(s.get("uses", "").startswith("iterative/setup-cml@") for s in steps)
        else:
            pytest.fail(f"{workflow.name}: unknown command {line!r}")


def test_a_pull_request_that_changes_data_params_or_pipeline_gets_the_report() -> None:
    doc = yaml.safe_load((REPO / ".github/workflows/ml_training.yml").read_text())
    paths = doc[True]["pull_request"]["paths"]
    for changed in ("data/**.dvc", "params.yaml", "dvc.yaml", "skintwin/**"):
        assert changed in paths
    runs = " ".join(s.get("run", "") for s in doc["jobs"]["train"]["steps"])
    assert "skintwin report --base" in runs and "cml comment" in runs and "reports/pr" in runs
