from __future__ import annotations

from pathlib import Path

import pytest

from skintwin.errors import SkinTwinError
from skintwin.io import atomic_dir
from skintwin.params.data_path import set_data_path


def test_atomic_dir_keeps_old_output_on_failure(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with atomic_dir(out) as tmp:
        (tmp / "a.txt").write_text("v1")
    with pytest.raises(RuntimeError), atomic_dir(out) as tmp:
        (tmp / "a.txt").write_text("half")
        raise RuntimeError("killed")
    assert (out / "a.txt").read_text() == "v1"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_set_data_path_keeps_comments(tmp_path: Path) -> None:
    (tmp_path / "params.yaml").write_text(
        "# top\ndata:\n  # which dataset\n  path: data/demo   # note\ntrain:\n  path: x\n"
    )
    (tmp_path / "mine").mkdir()
    assert set_data_path(tmp_path, tmp_path / "mine") is True
    text = (tmp_path / "params.yaml").read_text()
    assert "  path: mine   # note" in text and "# which dataset" in text and "  path: x" in text
    assert set_data_path(tmp_path, tmp_path / "mine") is False
    with pytest.raises(SkinTwinError, match="does not exist"):
        set_data_path(tmp_path, tmp_path / "missing")


@pytest.mark.parametrize("name", ["2024", "null", "@scans", "*raw", "a #1", "two words", "x: y"])
def test_set_data_path_writes_any_folder_name_so_that_it_reads_back(
    tmp_path: Path, name: str
) -> None:
    """A folder named like a number, null, an alias or a comment once made params.yaml
    unreadable, or cut the path short."""
    import yaml

    (tmp_path / "params.yaml").write_text("data:\n  path: data/demo   # note\ntrain: {}\n")
    for folder in (name, "other"):
        (tmp_path / folder).mkdir()
        assert set_data_path(tmp_path, tmp_path / folder) is True
        text = (tmp_path / "params.yaml").read_text()
        assert yaml.safe_load(text)["data"]["path"] == folder and "   # note" in text
        assert set_data_path(tmp_path, tmp_path / folder) is False


def test_only_a_folder_marked_as_the_step_s_output_is_replaced(tmp_path: Path) -> None:
    """A plain YOLO dataset holds just the names preprocess writes: without the step's
    marker it is the user's, never replaced; with it, an earlier output."""
    from skintwin.io import MARKER, check_output_dir

    folder = tmp_path / "curated"
    (folder / "images").mkdir(parents=True)
    (folder / "labels").mkdir()
    (folder / "data.yaml").write_text("names: [psoriasis]\n")
    (folder / ".gitignore").write_text("/images\n")  # DVC's own
    with pytest.raises(SkinTwinError, match=f"not an earlier `preprocess` output \\(no {MARKER}"):
        check_output_dir(folder, "preprocess")
    (folder / MARKER).write_text("generate\n")
    with pytest.raises(SkinTwinError, match="not an earlier `preprocess` output"):
        check_output_dir(folder, "preprocess")
    (folder / MARKER).write_text("preprocess\n")
    assert check_output_dir(folder, "preprocess") == folder.resolve()


def test_writers_sharing_a_folder_keep_each_others_work(tmp_path: Path) -> None:
    """The model cache: the service and batch scoring download the new champion at once.
    The second writer removed the first's folder as a leftover, and the first failed; now
    both finish, the first copy stays (readers may be loading it) and no temp folder is
    left behind. A killed writer's leftover, an hour old, is still cleaned."""
    import os
    import time

    target = tmp_path / "cache" / "v1"
    with atomic_dir(target, shared=True) as first:
        (first / "MLmodel").write_text("first")
        with atomic_dir(target, shared=True) as second:
            assert first.is_dir()  # not taken for a leftover
            (second / "MLmodel").write_text("second")
        assert (target / "MLmodel").read_text() == "second"
    assert (target / "MLmodel").read_text() == "second"
    leftover = tmp_path / "cache" / ".v1.tmp-killed"
    leftover.mkdir()
    hour_ago = time.time() - 3700
    os.utime(leftover, (hour_ago, hour_ago))
    with atomic_dir(tmp_path / "cache" / "v1", shared=True) as third:
        (third / "MLmodel").write_text("third")
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["v1"]


def test_one_training_run_holds_a_project_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The manual and the CI deployment, or a retrain on drift, could train one project at
    once: each writes params.yaml (`--data-path`) and runs the stages the other reads. The
    second now waits for the first, and past its wait fails naming the holder, with
    nothing of the project touched."""
    import os

    import flows.training as training
    from skintwin.errors import SkinTwinError
    from skintwin.io import held
    from skintwin.project import ProjectPaths

    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    (tmp_path / "params.yaml").write_text("data: {path: data/demo}\n")
    lock, told = ProjectPaths(tmp_path).training_lock, []
    monkeypatch.setattr(training, "WAIT_S", 0.3)
    monkeypatch.setattr(training, "_waiting", told.append)
    refused = pytest.raises(SkinTwinError, match=r"training: pid \d+ since .* holds .*\.lock")
    with held(lock, "training", 5), refused:
        training.training_flow.fn(data_path="elsewhere", project_dir=str(tmp_path))
    assert len(told) == 1 and told[0].startswith(f"pid {os.getpid()} since ")
    assert (tmp_path / "params.yaml").read_text() == "data: {path: data/demo}\n"
    with held(lock, "training", 0.3):  # released: the next run takes it at once
        pass


def test_ports_handed_out_are_never_the_same_twice() -> None:
    """The OS gives a port just closed out again: CI once started the Prefect and the MLflow
    server of `make up` on one port (the second never answered its health check)."""
    from skintwin.ops.processes import free_port

    ports = [free_port() for _ in range(1000)]
    assert len(set(ports)) == len(ports)
