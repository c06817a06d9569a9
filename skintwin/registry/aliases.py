"""Every alias move goes through here, so each one is an event in the registry history:
promotion by the gate, a new candidate as `challenger`, rollback, a human's approval."""

from __future__ import annotations

from pathlib import Path

from skintwin import db
from skintwin.errors import SkinTwinError
from skintwin.project import ProjectPaths
from skintwin.registry import client
from skintwin.registry.history import Event, History


def history(root: Path) -> History:
    """The project's history, in the prediction store's database (`SKINTWIN_MONITOR_DB`)."""
    return History(db.database_url(ProjectPaths(root).predictions_db))


def move(
    root: Path,
    name: str,
    alias: str,
    version: str,
    action: str,
    reason: str,
    record: dict | None = None,
) -> Event:
    """Point `alias` at `version` and record the move (both, or neither)."""
    client.get_version(name, version)  # a clear error for a version that does not exist
    current = client.alias_version(name, alias)
    before = None if current is None else str(current.version)
    with history(root).appending(name, alias, before, version, action, reason, record) as event:
        client.client().set_registered_model_alias(name, alias, str(version))
    return event


def rollback(root: Path, name: str, to: str, reason: str) -> Event:
    """Move `champion` back to the older version `to`."""
    current = client.alias_version(name, client.CHAMPION)
    if current is None:
        raise SkinTwinError(f"model '{name}' has no champion to roll back")
    if int(to) >= int(current.version):
        raise SkinTwinError(
            f"rollback --to {to}: not older than the champion v{current.version}; "
            "a newer version is promoted by the gate or `skintwin promote --approve`"
        )
    return move(root, name, client.CHAMPION, to, "rollback", reason)


def verify(root: Path, name: str) -> list[str]:
    """The chain's problems, and any alias whose live version the log's last move for it
    does not explain (newest events deleted, or an alias moved behind the log's back)."""
    log = history(root)
    problems = log.verify()
    last: dict[str, str] = {}
    for event in log.events(name):
        last[event.alias] = event.to_version
    for alias in (client.CHAMPION, client.CHALLENGER):
        live = client.alias_version(name, alias)
        if live is not None and last.get(alias) != str(live.version):
            problems.append(
                f"{name}@{alias} is v{live.version} in the registry but "
                f"v{last.get(alias, '-')} by the history: an event is missing"
            )
    return problems
