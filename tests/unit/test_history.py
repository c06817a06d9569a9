"""The registry history: an append-only, hash-chained log of alias moves that answers "who
was champion then" and detects any edit or deletion; rollback is one more event. Real
MLflow registry and a real SQLite database in a temporary folder."""

from __future__ import annotations

import contextlib
import json
import random
import sqlite3
from pathlib import Path

import pytest

from skintwin.errors import SkinTwinError
from skintwin.ops.cli import main
from skintwin.registry import aliases, client
from skintwin.registry.history import History
from tests.conftest import REPO, make_project

NAME = "skin-twin-detector"
T0 = 1_780_000_000.0  # 2026-05-28


@pytest.fixture
def log(tmp_path: Path) -> History:
    return History(f"sqlite:///{tmp_path / 'history.db'}")


def _simulate(log: History, moves: int, seed: int) -> list[tuple[float, str]]:
    """`moves` champion moves (promotions and rollbacks) at known, increasing times."""
    rng = random.Random(seed)
    at, current, newest, truth = T0, None, 0, []
    for _ in range(moves):
        at += rng.uniform(60, 7 * 86400)
        if newest > 1 and rng.random() < 0.3:
            to, action = str(rng.randint(1, newest - 1)), "rollback"
        else:
            newest += 1
            to, action = str(newest), "promote"
        with log.appending(NAME, "champion", current, to, action, f"{action} {to}", at=at):
            pass
        truth.append((at, to))
        current = to
    return truth


def test_history_says_who_was_champion_at_any_time(log: History) -> None:
    truth = _simulate(log, 60, seed=1)
    assert log.count() == 60 and log.verify() == []
    rng = random.Random(2)
    for _ in range(100):
        when = rng.uniform(T0, truth[-1][0] + 86400)
        expected = next((v for t, v in reversed(truth) if t <= when), None)
        assert log.version_at(NAME, "champion", when) == expected, when
    assert log.version_at(NAME, "champion", T0 - 1) is None  # before the first promotion


@pytest.mark.parametrize(
    ("column", "value"),
    [("to_version", "'999'"), ("reason", "'nothing happened'"), ("at", "at + 1"),
     ("actor", "'someone else'"), ("record", "'{}x'")],
)  # fmt: skip
def test_any_edit_is_found_and_named(log: History, tmp_path: Path, column, value) -> None:
    _simulate(log, 50, seed=3)
    victim = random.Random(column).randint(1, 50)
    with sqlite3.connect(tmp_path / "history.db") as db:
        db.execute(f"UPDATE registry_events SET {column} = {value} WHERE seq = ?", (victim,))
    problems = log.verify()
    assert problems and problems[0].startswith(f"entry #{victim}:"), problems


def test_a_deleted_entry_or_a_rewritten_hash_is_found(log: History, tmp_path: Path) -> None:
    _simulate(log, 50, seed=4)
    with sqlite3.connect(tmp_path / "history.db") as db:
        db.execute("DELETE FROM registry_events WHERE seq = 17")
    assert any("#17 is missing" in p for p in log.verify())
    with sqlite3.connect(tmp_path / "history.db") as db:  # forge entry 30 with a fresh hash
        db.execute("UPDATE registry_events SET to_version = '1', hash = ? WHERE seq = 30",
                   ("f" * 64,))  # fmt: skip
    assert any(p.startswith("entry #30:") for p in log.verify())
    assert any(p.startswith("entry #31: does not follow") for p in log.verify())


def test_a_failed_move_leaves_no_event(log: History) -> None:
    with pytest.raises(RuntimeError), log.appending(NAME, "champion", None, "1", "promote", "x"):
        raise RuntimeError("the registry refused the alias")
    assert log.count() == 0
    with (
        pytest.raises(SkinTwinError, match="needs a reason"),
        log.appending(NAME, "champion", None, "1", "promote", "  "),
    ):
        pass


@pytest.fixture
def registered(tmp_path: Path, base_params: dict, monkeypatch: pytest.MonkeyPatch):
    """A project whose registry holds three versions, v3 champion (each move recorded)."""
    import mlflow
    from mlflow.exceptions import MlflowException

    root = make_project(tmp_path / "project", base_params)
    uri = f"sqlite:///{root / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.delenv("SKINTWIN_MONITOR_DB", raising=False)
    mlflow.set_tracking_uri(uri)
    registry = client.client()
    with contextlib.suppress(MlflowException):
        registry.create_registered_model(NAME)
    for v in ("1", "2", "3"):
        folder = tmp_path / "versions" / v  # what a rollback fetches before it moves
        folder.mkdir(parents=True)
        (folder / "best.pt").write_bytes(b"weights of v" + v.encode())
        registry.create_model_version(NAME, source=folder.as_uri())
        aliases.move(root, NAME, client.CHALLENGER, v, "register", f"candidate v{v}")
        if v != "2":  # v2: rejected by the gate, never champion
            aliases.move(root, NAME, client.CHAMPION, v, "promote", f"gate passed v{v}")
    return root


def test_rollback_moves_champion_back_and_is_an_event(registered: Path, capsys) -> None:
    args = ["--project-dir", str(registered)]
    assert main(["rollback", *args, "--to", "1", "--reason", "v3 misses small moles"]) == 0
    assert str(client.alias_version(NAME, client.CHAMPION).version) == "1"
    assert main(["history", *args]) == 0
    out = capsys.readouterr().out
    assert "v3 → v1 rollback by cli user" in out and "v3 misses small moles" in out
    assert main(["history", *args, "--verify"]) == 0
    assert "intact: 6 events" in capsys.readouterr().out
    # a newer version, one never champion, an unknown one, or no reason: refused
    assert main(["rollback", *args, "--to", "2", "--reason", "x"]) == 1
    assert "not older than the champion v1" in capsys.readouterr().err
    for bad in (["--to", "0", "--reason", "x"], ["--to", "1"]):  # argparse: exit 2
        with pytest.raises(SystemExit, match="2"):
            main(["rollback", *args, *bad])
    assert aliases.history(registered).count() == 6


def test_a_version_whose_weights_are_gone_is_not_rolled_back_to(
    registered: Path, tmp_path: Path, capsys
) -> None:
    import shutil

    shutil.rmtree(tmp_path / "versions" / "1")  # v1's artifacts were cleaned up
    args = ["--project-dir", str(registered), "--to", "1", "--reason", "v3 misbehaves"]
    assert main(["rollback", *args]) == 1
    assert "rollback --to 1: its weights cannot be fetched" in capsys.readouterr().err
    assert str(client.alias_version(NAME, client.CHAMPION).version) == "3"
    assert aliases.history(registered).count() == 5


@pytest.mark.parametrize("stop", [RuntimeError("registry refused the tag"), KeyboardInterrupt()])
def test_a_move_whose_head_tag_fails_puts_the_alias_back(
    registered: Path, monkeypatch, stop: BaseException
) -> None:
    """The alias and the event are both, or neither: when the registry refuses the chain's
    head tag after the alias moved, or the user presses Ctrl-C there, the event rolls back
    and the alias goes back too (a Ctrl-C once left champion moved with no event)."""
    from mlflow.tracking import MlflowClient

    def refuse(self, name, key, value):
        raise stop

    with monkeypatch.context() as patched, pytest.raises(type(stop)):
        patched.setattr(MlflowClient, "set_registered_model_tag", refuse)
        aliases.move(registered, NAME, client.CHAMPION, "1", "promote", "x", expect="3")
    assert str(client.alias_version(NAME, client.CHAMPION).version) == "3"
    assert aliases.history(registered).count() == 5 and aliases.verify(registered, NAME) == []


def test_a_decision_against_one_champion_does_not_replace_another(registered: Path) -> None:
    """The gate compares a candidate with the champion it read minutes earlier; if a rollback
    moved champion meanwhile, the promotion is refused rather than replace a version the
    candidate was never compared with."""
    from skintwin.errors import SkinTwinError

    with pytest.raises(SkinTwinError, match="moved to v3 while the decision against v1"):
        aliases.move(registered, NAME, client.CHAMPION, "2", "promote", "x", expect="1")
    assert str(client.alias_version(NAME, client.CHAMPION).version) == "3"
    assert aliases.history(registered).count() == 5
    aliases.move(registered, NAME, client.CHAMPION, "2", "promote", "x", expect="3")
    assert str(client.alias_version(NAME, client.CHAMPION).version) == "2"


def test_a_version_never_champion_is_not_rolled_back_to(registered: Path, capsys) -> None:
    args = ["--project-dir", str(registered)]
    assert main(["rollback", *args, "--to", "2", "--reason", "x"]) == 1
    assert "v2 was never champion" in capsys.readouterr().err
    assert str(client.alias_version(NAME, client.CHAMPION).version) == "3"


def _rewrite(db: Path, seq: int, reason: str) -> None:
    """Edit one event and recompute every hash after it, as a careful forger would."""
    from dataclasses import replace

    from skintwin.registry.history import GENESIS

    log = History(f"sqlite:///{db}")
    prev = GENESIS
    with sqlite3.connect(db) as conn:
        for e in log.events():
            e = replace(e, prev_hash=prev, reason=reason if e.seq == seq else e.reason)
            e = replace(e, hash=e.digest())
            conn.execute(
                "UPDATE registry_events SET reason = ?, prev_hash = ?, hash = ? WHERE seq = ?",
                (e.reason, e.prev_hash, e.hash, e.seq),
            )
            prev = e.hash


def test_a_rewritten_or_cut_off_log_disagrees_with_the_registry(registered: Path) -> None:
    db = registered / ".monitoring/predictions.db"
    _rewrite(db, 2, "nothing to see here")
    assert aliases.history(registered).verify() == []  # the chain alone cannot tell
    problems = aliases.verify(registered, NAME)
    assert any("events were rewritten or removed" in p for p in problems), problems


def test_an_alias_moved_behind_the_history_is_found(registered: Path, capsys) -> None:
    client.client().set_registered_model_alias(NAME, client.CHAMPION, "2")  # not via aliases
    assert main(["history", "--project-dir", str(registered), "--verify"]) == 1
    err = capsys.readouterr().err
    assert "champion is v2 in the registry but v3 by the history" in err
    at = main(["history", "--project-dir", str(registered), "--at", "2000-01-01T00:00Z"])
    assert at == 0 and "not set" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="2"):
        main(["history", "--project-dir", str(registered), "--at", "yesterday"])
    assert "is not an ISO time" in capsys.readouterr().err


def test_concurrent_writers_keep_one_unbroken_chain(log: History) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def writer(k: int) -> None:
        for i in range(25):
            with log.appending(NAME, "challenger", None, str(k * 100 + i), "register", "new"):
                pass

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(writer, range(4)))
    assert log.count() == 100 and log.verify() == []
    assert [e.seq for e in log.events()] == list(range(1, 101))


def test_of_two_promotions_decided_against_one_champion_only_one_moves(
    registered: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two gate runs (the manual and the CI deployment, say) both compared their candidate
    with champion v3. Both read v3 before either moves it; the second to write must be
    refused, or it replaces a champion it was never compared with. A barrier on the real
    registry read makes the two interleave that way every time."""
    import threading

    from mlflow.exceptions import MlflowException

    registry = client.client()
    for _ in range(2):  # v4 and v5
        registry.create_model_version(NAME, source=registered.as_uri())
    read, both_read = client.alias_version, threading.Barrier(2)

    def alias_version(name: str, alias: str = client.CHAMPION):
        found = read(name, alias)
        if threading.current_thread().name.startswith("gate") and alias == client.CHAMPION:
            both_read.wait(timeout=30)
        return found

    monkeypatch.setattr(client, "alias_version", alias_version)
    outcome: dict[str, str] = {}

    def gate(version: str) -> None:
        try:
            aliases.move(registered, NAME, client.CHAMPION, version, "promote", "x", expect="3")
            outcome[version] = "moved"
        except (SkinTwinError, MlflowException) as exc:
            outcome[version] = str(exc)

    runs = [threading.Thread(target=gate, args=(v,), name=f"gate-{v}") for v in ("4", "5")]
    for run in runs:
        run.start()
    for run in runs:
        run.join()
    monkeypatch.setattr(client, "alias_version", read)
    moved = [v for v, what in outcome.items() if what == "moved"]
    assert len(moved) == 1, outcome
    refused = outcome[{"4", "5"}.difference(moved).pop()]
    assert "nothing moved; decide again" in refused
    assert str(client.alias_version(NAME, client.CHAMPION).version) == moved[0]
    assert aliases.verify(registered, NAME) == []
    last = [e for e in aliases.history(registered).events(NAME) if e.alias == client.CHAMPION]
    assert (last[-1].from_version, last[-1].to_version) == ("3", moved[0])


def test_a_move_committed_between_anothers_check_and_its_write_refuses_that_one(
    log: History, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two moves decided against v3. B has checked the log (its last move: v3) when A's
    move commits: B's write must fail and B, reading the log again, be refused. (Before
    the log's last event was read ahead of the check, B took the next seq and both moved.)"""
    import threading

    with log.appending(NAME, "champion", None, "3", "promote", "first"):
        pass
    check, b_checked, a_done = History._check_follows, threading.Event(), threading.Event()

    def check_then_wait(conn, fields: dict) -> None:
        check(conn, fields)
        if fields["to_version"] == "5":  # B: hold its write until A has moved
            b_checked.set()
            a_done.wait(timeout=30)

    monkeypatch.setattr(History, "_check_follows", staticmethod(check_then_wait))
    outcome: dict[str, str] = {}

    def move(version: str) -> None:
        try:
            with log.appending(NAME, "champion", "3", version, "promote", "x", follows=True):
                pass
            outcome[version] = "moved"
        except SkinTwinError as exc:
            outcome[version] = str(exc)

    b = threading.Thread(target=move, args=("5",))
    b.start()
    assert b_checked.wait(timeout=30)
    move("4")
    a_done.set()
    b.join()
    assert outcome["4"] == "moved"
    assert "last move went to v4, not to v3" in outcome["5"]
    assert [e.to_version for e in log.events()] == ["3", "4"] and log.verify() == []


def test_a_move_that_does_not_follow_the_logs_last_is_refused(log: History) -> None:
    with log.appending(NAME, "champion", None, "3", "promote", "first"):
        pass
    stale = log.appending(NAME, "champion", "2", "4", "promote", "stale", follows=True)
    with pytest.raises(SkinTwinError, match="last move went to v3, not to v2"), stale:
        pass
    with log.appending(NAME, "champion", "3", "4", "promote", "current", follows=True):
        pass
    assert log.count() == 2 and log.verify() == []


def test_a_version_a_human_approved_is_not_gated_against_itself(registered: Path) -> None:
    """v2's gate could not compare it with the champion (rule "no comparison": gated again on
    the next run); a human approved it meanwhile. The next run must not gate v2 against
    itself, which reads "no champion yet" and records a gate's promotion nobody compared."""
    from skintwin.project import ProjectPaths
    from skintwin.registry import promotion
    from skintwin.training.evaluation import Evaluation

    registry = client.client()
    registry.set_model_version_tag(NAME, "2", "gate.decision", "rejected")
    registry.set_model_version_tag(NAME, "2", "gate.rule", promotion.NO_COMPARISON)
    aliases.move(registered, NAME, client.CHAMPION, "2", "approve", "read the figures myself")
    events = aliases.history(registered).count()
    candidate = {"version": "2", "new": False, "decision": "rejected",
                 "rule": promotion.NO_COMPARISON}  # fmt: skip
    out = promotion.gate(ProjectPaths(registered), candidate, Evaluation({"mAP50": 0.51}, {}, {}))
    assert out["repeat"] and "not gated against itself" in out["reasons"][0]
    assert "approve by" in out["reasons"][0] and "read the figures myself" in out["reasons"][0]
    assert aliases.history(registered).count() == events  # nothing moved
    assert client.get_version(NAME, "2").tags["gate.decision"] == "rejected"  # nor recorded


def test_a_candidate_gated_again_under_loosened_gate_settings_is_held(registered: Path) -> None:
    """The change-control hold compares the candidate's registration params with today's
    gate settings too (`change_control.changed_since`)."""
    import json

    import yaml

    from skintwin.project import ProjectPaths
    from skintwin.registry import approval, change_control

    (registered / change_control.FILE).write_text((REPO / change_control.FILE).read_text())
    params = yaml.safe_load((registered / "params.yaml").read_text())
    registry = client.client()
    for v in ("2", "3"):  # both registered under the same params
        registry.set_model_version_tag(NAME, v, "lineage.params", json.dumps(params))
    champ = client.alias_version(NAME, client.CHAMPION)
    tags = client.get_version(NAME, "2").tags
    assert approval.held(ProjectPaths(registered), tags, "2", champ) == []
    params["promote"]["min_delta"] = -0.5  # loosened after v2's first gate
    (registered / "params.yaml").write_text(yaml.safe_dump(params))
    (held,) = approval.held(ProjectPaths(registered), tags, "2", champ)
    assert held.startswith("promote.min_delta ") and "since it was registered" in held


def test_a_champion_trained_elsewhere_holds_the_next_candidate(registered: Path) -> None:
    """A champion registered from a `.pt` trained elsewhere records this project's params as
    its own, so an in-project candidate compared with it looks unchanged: a human decides."""
    from skintwin.project import ProjectPaths
    from skintwin.registry import approval, change_control

    (registered / change_control.FILE).write_text((REPO / change_control.FILE).read_text())
    registry = client.client()
    registry.set_model_version_tag(NAME, "3", "lineage.source_weights", "vendor.pt")
    champ = client.alias_version(NAME, client.CHAMPION)
    (held,) = approval.held(
        ProjectPaths(registered), client.get_version(NAME, "2").tags, "2", champ
    )
    assert "champion v3's weights were trained elsewhere" in held


def test_lineage_is_registered_whole_however_long(registered: Path, tmp_path: Path) -> None:
    """Registry tags were cut at 4,900 characters, and cut params compare as unreadable:
    the lineage is kept whole (MLflow 3 takes 100,000), and past that refused."""
    weights = tmp_path / "best.pt"
    weights.write_bytes(b"weights")
    params = json.dumps({"monitor": {f"feature_{i:03d}": "wasserstein" for i in range(300)}})
    assert len(params) > 4900
    run = client.client().create_run(client.client().create_experiment("lineage")).info.run_id
    version = client.log_and_register(weights, run, NAME, {"lineage.params": params})
    assert client.get_version(NAME, version).tags["lineage.params"] == params
    with pytest.raises(SkinTwinError, match=r"lineage\.params: 100001 characters"):
        client.log_and_register(weights, run, NAME, {"lineage.params": "x" * 100_001})


def test_a_caller_naming_no_threshold_gets_the_projects(registered: Path, tmp_path: Path) -> None:
    """`mlflow models serve` answers at the signature's default: it was 0.25 whatever
    `monitor.conf` said, so it and the service disagreed on the same photo."""
    import mlflow

    weights = tmp_path / "best.pt"
    weights.write_bytes(b"weights")
    run = client.client().create_run(client.client().create_experiment("conf")).info.run_id
    version = client.log_and_register(weights, run, NAME, {}, conf=0.05)
    info = mlflow.models.get_model_info(f"models:/{NAME}/{version}")
    defaults = {spec.name: spec.default for spec in info.signature.params}
    assert defaults == {"conf": 0.05, "imgsz": 0}


def test_a_promoted_version_rolled_back_is_not_reported_promoted_again(registered: Path) -> None:
    """A flow run again on v3's training run finds its old decision, "promoted"; after a
    rollback it must not report v3 as promoted (the summary said so while v1 served)."""
    from skintwin.project import ProjectPaths
    from skintwin.registry import promotion

    client.client().set_model_version_tag(NAME, "3", "gate.decision", "promoted")
    aliases.rollback(registered, NAME, "1", "v3 misses small moles")
    candidate = {"version": "3", "new": False, "decision": "promoted", "rule": "superior"}
    out = promotion.gate(ProjectPaths(registered), candidate)
    assert out["repeat"] and out["promote"] is False
    assert out["reasons"] == ["already decided: promoted", "champion is v1 now"]


def test_a_misspelt_model_name_is_named_not_an_empty_history(registered: Path, capsys) -> None:
    args = ["history", "--project-dir", str(registered), "--model-name"]
    assert main([*args, "skin-twin-detectr"]) == 1  # it printed nothing and exited 0
    assert f"the history holds: {NAME}" in capsys.readouterr().err
    assert main([*args, NAME]) == 0 and "v3" in capsys.readouterr().out


def test_plots_before_any_run_is_an_error_not_a_page(tmp_path: Path, base_params: dict) -> None:
    """`dvc plots show` exits 0 when it can load no plot (a fresh clone: dvc.lock names
    outputs not pulled); `skintwin plots` then printed the path of a page it never wrote."""
    import shutil

    from skintwin.ops.plots_page import show

    root = make_project(tmp_path / "project", base_params)
    shutil.copy(REPO / "dvc.lock", root / "dvc.lock")
    with pytest.raises(SkinTwinError, match=r"index.html: not written.*dvc repro"):
        show(root)
    assert not (root / "dvc_plots").exists()


def test_a_pull_request_report_says_none_changed_and_names_a_human_approval(
    tmp_path: Path, base_params: dict
) -> None:
    """`dvc params diff --md` writes a table's head when nothing changed: the report showed
    an empty table. A version a human made champion read only "not promoted"."""
    from skintwin.ops.pr_report import _decision_section, write_report
    from skintwin.project import ProjectPaths

    root = make_project(tmp_path / "project", base_params)
    text = write_report(ProjectPaths(root), "HEAD", root / "reports/pr").read_text()
    assert "## Parameters changed against `HEAD`\nNone." in text
    record = {"promote": False, "rule": "superior", "reasons": ["no evidence"], "groups": {},
              "approved": "cli user ana: reviewed"}  # fmt: skip
    shown = _decision_section("4", record)
    assert "**approved as champion by a human** (cli user ana: reviewed)" in shown


def test_what_the_pipeline_writes_does_not_make_a_version_dirty(
    tmp_path: Path, base_params: dict
) -> None:
    """A first run from a clean clone rewrites dvc.lock and the git-kept reports; its
    version read "dirty: True" for code exactly as committed."""
    import subprocess

    import yaml

    from skintwin.project import ProjectPaths
    from skintwin.registry.lineage import collect_lineage

    root = make_project(tmp_path / "project", base_params)
    lock = {"schema": "2.0", "stages": {"evaluate": {"cmd": "x", "outs": [
        {"path": "reports/evaluate/metrics.json", "md5": "1"}]}}}  # fmt: skip
    (root / "dvc.lock").write_text(yaml.safe_dump(lock))
    (root / "reports/evaluate").mkdir(parents=True)
    (root / "reports/evaluate/metrics.json").write_text("{}")
    (root / "reports/evaluate/.gitignore").write_text("/charts\n")
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    subprocess.run(["git", "commit", "-qm", "record"], cwd=root, check=True)
    lock["stages"]["evaluate"]["outs"][0]["md5"] = "2"  # the run writes them again
    (root / "dvc.lock").write_text(yaml.safe_dump(lock))
    (root / "reports/evaluate/metrics.json").write_text('{"test": {}}')
    (root / "reports/evaluate/.gitignore").write_text("/charts\n/seen.json\n")
    assert collect_lineage(ProjectPaths(root), "run")["git_dirty"] == "False"
    (root / "params.yaml").write_text((root / "params.yaml").read_text() + "\n# edited\n")
    assert collect_lineage(ProjectPaths(root), "run")["git_dirty"] == "True"
