"""Every alias move goes through here, so each one is an event in the registry history:
promotion by the gate, a new candidate as `challenger`, rollback, a human's approval."""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path

from skintwin import db
from skintwin.errors import SkinTwinError
from skintwin.project import ProjectPaths
from skintwin.registry import client
from skintwin.registry.history import Event, History

ANY = object()  # `move(expect=ANY)`: whatever the alias points to now
HEAD_TAG = "history.head"  # registered-model tag: "<seq>:<hash>" of the model's last event


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
    expect: object = ANY,
) -> Event:
    """Point `alias` at `version` and record the move (both, or neither). With `expect`
    (a version, or None for no alias yet), the move is refused if the alias points
    elsewhere now: a decision taken against one champion does not replace another."""
    client.get_version(name, version)  # a clear error for a version that does not exist
    current = client.alias_version(name, alias)
    before = None if current is None else str(current.version)
    if expect is not ANY and before != (None if expect is None else str(expect)):
        raise SkinTwinError(
            f"{name}@{alias} moved to v{before or '-'} while the decision against "
            f"v{expect or '-'} was taken: nothing moved; decide again"
        )
    decided = expect is not ANY  # against one version: the log must still say so
    registry = client.client()
    head, touched = client.get_model_tag(name, HEAD_TAG), False
    try:
        with history(root).appending(
            name, alias, before, version, action, reason, record, follows=decided
        ) as event:
            touched = True  # from here the registry may have moved
            registry.set_registered_model_alias(name, alias, str(version))
            # the chain's head, kept in the registry too: a rewritten or cut-off log disagrees
            registry.set_registered_model_tag(name, HEAD_TAG, f"{event.seq}:{event.hash}")
    except BaseException:  # no event (a failure, a failed commit, Ctrl-C): no move either
        if touched:  # a move refused before it began must not undo another writer's
            _put_back(registry, name, alias, before, head)
        raise
    return event


def _put_back(registry, name: str, alias: str, before: str | None, head: str | None) -> None:
    """The alias and the head tag as they were before a move whose event did not commit."""
    with contextlib.suppress(Exception):
        if before is None:
            registry.delete_registered_model_alias(name, alias)
        else:
            registry.set_registered_model_alias(name, alias, before)
    with contextlib.suppress(Exception):
        if head is None:
            registry.delete_registered_model_tag(name, HEAD_TAG)
        else:
            registry.set_registered_model_tag(name, HEAD_TAG, head)


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
    was = [e for e in history(root).events(name) if e.alias == client.CHAMPION]
    if not any(e.to_version == str(to) for e in was):
        raise SkinTwinError(
            f"rollback --to {to}: v{to} was never champion; a version the gate did not "
            "promote goes to production only by `skintwin promote --approve`"
        )
    fetchable(name, to, "rollback --to")
    return move(root, name, client.CHAMPION, to, "rollback", reason)


def fetchable(name: str, version: str, what: str) -> None:
    """Refuse to send production to a version whose weights cannot be fetched now (its
    artifacts cleaned up or out of reach): the service would follow the alias and fail."""
    from mlflow.exceptions import MlflowException

    with tempfile.TemporaryDirectory(prefix="skintwin-check-") as tmp:
        try:
            client.version_weights(name, version, Path(tmp))
        except (SkinTwinError, MlflowException, OSError) as exc:
            raise SkinTwinError(
                f"{what} {version}: its weights cannot be fetched ({exc}); nothing moved"
            ) from None


def verify(root: Path, name: str) -> list[str]:
    """The chain's problems; any alias whose live version the log's last move for it does
    not explain (an alias moved behind the log's back); and a log whose last event is not
    the one the registry recorded at the last move (newest events cut off, or the chain
    rewritten with fresh hashes)."""
    log = history(root)
    problems = log.verify()
    events = log.events(name)
    last = {e.alias: e.to_version for e in events}  # the newest event per alias wins
    for alias in (client.CHAMPION, client.CHALLENGER):
        live = client.alias_version(name, alias)
        live_v = None if live is None else str(live.version)
        if last.get(alias) != live_v:
            problems.append(
                f"{name}@{alias} is v{live_v or '-'} in the registry but "
                f"v{last.get(alias, '-')} by the history: an event is missing"
            )
    head = client.get_model_tag(name, HEAD_TAG)
    newest = f"{events[-1].seq}:{events[-1].hash}" if events else None
    if head != newest:
        problems.append(
            f"the registry's record of the last event ({head or 'none'}) is not the log's "
            f"({newest or 'none'}): events were rewritten or removed"
        )
    return problems
