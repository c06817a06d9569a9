from __future__ import annotations

from pathlib import Path

import pytest

from skintwin.errors import SkinTwinError
from skintwin.io import atomic_dir
from skintwin.project import set_data_path


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


def test_an_unmarked_folder_of_the_step_s_own_names_is_an_earlier_output(tmp_path: Path) -> None:
    """Outputs written before markers existed stay replaceable; anything else is refused."""
    from skintwin.io import check_output_dir

    folder = tmp_path / "evaluate"
    folder.mkdir()
    (folder / "metrics.json").write_text("{}")
    (folder / ".gitignore").write_text("/charts\n")  # DVC's own
    known = frozenset({"metrics.json", "charts"})
    assert check_output_dir(folder, "evaluate", known=known) == folder.resolve()
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(SkinTwinError, match="not an earlier `evaluate` output"):
        check_output_dir(folder, "evaluate", known=known)
