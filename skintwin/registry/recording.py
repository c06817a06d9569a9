"""Recording a gate's decision on a version (its model card, its tags), and the two ways
the gate finds the version it is given champion already: a promotion of its own whose
record was cut short (resumed), or a move made some other way (nothing to decide)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from skintwin.project import ProjectPaths
from skintwin.registry import aliases, card, client
from skintwin.registry.lineage import trained_elsewhere

log = logging.getLogger(__name__)


def card_for(paths: ProjectPaths, name: str, version: str, tags: dict, evaluation, record: dict):
    """The version's model card, built and written: (its folder, its page)."""
    model_card = card.build(paths, name, version, tags, evaluation, record)
    folder = paths.model_cards / f"v{version}"
    charts = None if trained_elsewhere(tags) else paths.evaluate_dir / "charts"
    return folder, card.write(model_card, folder, charts)  # charts: the evaluate stage's


def keep(paths: ProjectPaths, name: str, version: str, record: dict, promote: bool,
         folder: Path, page: Path) -> str:  # fmt: skip
    """The decision on the version (tags, JSON) and its card as artifacts: the card's page,
    relative to the project."""
    client.record_decision(name, version, record, promote)
    client.log_model_card(name, version, folder)
    return page.relative_to(paths.root).as_posix()


def already_champion(paths: ProjectPaths, name: str, version: str) -> dict:
    """`version` became champion other than by this gate (a human's approval over a gate
    that could not compare it, a rollback): gated against itself it would read "no champion
    yet", pass on the floor alone and be recorded as the gate's promotion. Nothing is
    decided, moved or recorded."""
    moves = [e for e in aliases.history(paths.root).events(name)
             if e.alias == client.CHAMPION and e.to_version == str(version)]  # fmt: skip
    how = (f"{moves[-1].action} by {moves[-1].actor}: {moves[-1].reason}" if moves
           else "moved outside the history")  # fmt: skip
    log.info("version %s is champion already (%s): not gated against itself", version, how)
    return {"promote": True, "version": version, "repeat": True,
            "reasons": [f"champion already ({how}); not gated against itself"]}  # fmt: skip


def resume(paths: ProjectPaths, name: str, version: str, evaluation) -> dict | None:
    """A gate run that moved `champion` to `version` and failed before its decision was
    recorded (an MLflow error while tagging; the task is retried): record that decision, the
    one in the move's history event, rather than gate the version against itself, which
    would read "no champion yet" and lose the comparison that promoted it. None when the
    history holds no such move (the version became champion some other way)."""
    moves = [e for e in aliases.history(paths.root).events(name) if e.alias == client.CHAMPION]
    last = moves[-1] if moves else None
    if last is None or last.to_version != str(version) or last.action != "promote":
        return None
    record = json.loads(last.record)
    if not record.get("reasons"):
        return None
    tags = client.get_version(name, version).tags
    folder, page = card_for(paths, name, version, tags, evaluation, record)
    shown = keep(paths, name, version, record, True, folder, page)
    log.info("version %s: recorded the decision that promoted it (event %s)", version, last.seq)
    return {**record, "promote": True, "repeat": False, "resumed": True, "model_card": shown}
