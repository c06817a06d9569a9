"""The registry's history: every alias move (promotion, rollback, manual set) as an event in
an append-only log, each event carrying the hash of the one before it.

MLflow aliases move without a trace; this log answers "which version was champion on
that day, who moved it and why" months later. It lives in the project's SQL database
(the prediction store's, shared by the team; `SKINTWIN_MONITOR_DB`). Editing or deleting
an event breaks the chain and `verify` names the first entry at fault; deleting the newest
events is caught by comparing the log's last move with the registry's live aliases.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import time
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from sqlalchemy import Column, Float, Integer, MetaData, String, Table, Text, func, insert, select
from sqlalchemy.exc import IntegrityError, OperationalError

from skintwin import db
from skintwin.errors import SkinTwinError

GENESIS = "0" * 64
_metadata = MetaData()
events = Table(
    "registry_events",
    _metadata,
    Column("seq", Integer, primary_key=True, autoincrement=False),  # 1, 2, 3, ...
    Column("at", Float(precision=53), nullable=False),  # Unix time, seconds (a double)
    Column("model", String(200), nullable=False),
    Column("alias", String(100), nullable=False),
    Column("from_version", String(50)),  # None: the alias was not set before
    Column("to_version", String(50), nullable=False),
    Column("actor", String(300), nullable=False),  # flow run, CLI user
    Column("action", String(50), nullable=False),  # promote, register, rollback, approve
    Column("reason", Text, nullable=False),
    Column("record", Text, nullable=False),  # JSON: the gate's decision record, or {}
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)
_FIELDS = [c.name for c in events.columns if c.name != "hash"]


@dataclass(frozen=True)
class Event:
    seq: int
    at: float
    model: str
    alias: str
    from_version: str | None
    to_version: str
    actor: str
    action: str
    reason: str
    record: str
    prev_hash: str
    hash: str

    def digest(self) -> str:
        """The hash this event must carry: SHA-256 of every other field, canonical JSON."""
        body = json.dumps([getattr(self, f) for f in _FIELDS], separators=(",", ":"))
        return hashlib.sha256(body.encode()).hexdigest()

    def line(self) -> str:
        when = datetime.fromtimestamp(self.at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        move = f"v{self.from_version or '-'} → v{self.to_version}"
        who = f"{self.action} by {self.actor}"
        return f"#{self.seq} {when} {self.model}@{self.alias} {move} {who}: {self.reason}"


def actor() -> str:
    """Who moves an alias: the Prefect flow run, else the user at the command line."""
    try:
        from prefect.runtime import flow_run

        if flow_run.id:
            return f"prefect flow run {flow_run.id} ({flow_run.name})"
    except ImportError:  # Prefect is always installed here; a thin client may not have it
        pass
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = os.environ.get("USER", "unknown")
    return f"cli user {user}"


class History:
    """Append and read the events in the database at `url`."""

    def __init__(self, url: str) -> None:
        self.engine = db.open_engine(url, _metadata, "registry history")

    def events(self, model: str | None = None) -> list[Event]:
        query = select(events).order_by(events.c.seq)
        if model:
            query = query.where(events.c.model == model)
        with self.engine.connect() as conn:
            return [Event(**row._mapping) for row in conn.execute(query)]

    @contextmanager
    def appending(self, model: str, alias: str, from_version, to_version, action: str,
                  reason: str, record: dict | None = None, who: str | None = None,
                  at: float | None = None, follows: bool = False):  # fmt: skip
        """Append one event; the body of the `with` (the alias move itself) runs inside the
        same transaction, so a move that fails leaves no event and vice versa. `follows`:
        refuse unless the log's last move of this alias went to `from_version` (a compare-
        and-set: of two moves decided against one version, the second is refused, as a
        writer that lost the race re-reads the log before it appends)."""
        if not reason.strip():
            raise SkinTwinError("an alias move needs a reason")
        fields = dict(
            at=time.time() if at is None else at, model=model, alias=alias,
            from_version=None if from_version is None else str(from_version),
            to_version=str(to_version), actor=who or actor(), action=action, reason=reason,
            record=json.dumps(record or {}, sort_keys=True, default=str),
        )  # fmt: skip
        with ExitStack() as stack:
            for attempt in range(20):  # another writer took the same seq: take the next
                tx = stack.enter_context(ExitStack())
                try:
                    conn = tx.enter_context(self.engine.begin())
                    # the last event is read before the check: a move committed after
                    # this read takes the seq this event would, and its insert fails
                    last = conn.execute(
                        select(events.c.seq, events.c.hash).order_by(events.c.seq.desc()).limit(1)
                    ).first()
                    if follows:
                        self._check_follows(conn, fields)
                    event = self._insert(conn, fields, last)
                    break
                except (IntegrityError, OperationalError):
                    tx.close()  # rolls this attempt back
                    if attempt == 19:
                        raise
                    time.sleep(0.01 * (attempt + 1))
            yield event  # the transaction commits when the body returns, rolls back on error

    @staticmethod
    def _check_follows(conn, fields: dict) -> None:
        last = conn.execute(
            select(events.c.to_version)
            .where(events.c.model == fields["model"], events.c.alias == fields["alias"])
            .order_by(events.c.seq.desc())
            .limit(1)
        ).scalar()
        if last != fields["from_version"]:
            raise SkinTwinError(
                f"{fields['model']}@{fields['alias']}: the history's last move went to "
                f"v{last or '-'}, not to v{fields['from_version'] or '-'}, which the decision "
                "was taken against (moved meanwhile, or moved behind the history: "
                "`skintwin history --verify`); nothing moved; decide again"
            )

    @staticmethod
    def _insert(conn, fields: dict, last) -> Event:
        """Insert the event after `last` (the newest event's seq and hash, or None): the
        seq is the primary key, so a writer that appended since `last` was read makes this
        insert fail, and the caller reads the log again."""
        seq, prev = (last.seq + 1, last.hash) if last else (1, GENESIS)
        event = Event(seq=seq, prev_hash=prev, hash="", **fields)
        row = asdict(event) | {"hash": event.digest()}
        conn.execute(insert(events), row)
        return Event(**row)

    def version_at(self, model: str, alias: str, when: float) -> str | None:
        """The version `alias` pointed to at Unix time `when` (None: not set yet)."""
        query = (
            select(events.c.to_version)
            .where(events.c.model == model, events.c.alias == alias, events.c.at <= when)
            .order_by(events.c.seq.desc())  # the last move made by then, as appended
            .limit(1)
        )
        with self.engine.connect() as conn:
            return conn.execute(query).scalar()

    def verify(self) -> list[str]:
        """Problems found in the chain, each naming its entry (empty: intact)."""
        problems, prev = [], GENESIS
        for expected, e in enumerate(self.events(), start=1):
            if e.seq != expected:
                problems.append(f"entry #{expected} is missing (next found: #{e.seq})")
            if e.prev_hash != prev:
                problems.append(f"entry #{e.seq}: does not follow the entry before it")
            if e.digest() != e.hash:
                problems.append(f"entry #{e.seq}: its content was changed after it was written")
            prev = e.hash
        return problems

    def count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(events)).scalar())
