"""The prediction store: one row per prediction, in any SQLAlchemy database.

Images are never stored; their features are. Every row has a unique id, so a write that is
replayed (from the journal after a locked database) never doubles a row, and a batch run's
rows carry its batch id, so a rerun replaces them. The same database keeps the alert
de-duplication state, claimed with single atomic statements so that concurrent drift
checks raise one alert. Tables and engine: `schema.py`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from skintwin.db import database_url
from skintwin.errors import SkinTwinError
from skintwin.monitoring.schema import (
    alert_state,
    open_engine,
    performance_estimates,
    predictions,
    stored_row,
)
from skintwin.project import ProjectPaths
from skintwin.redact import mask_url


def default_url(root: Path) -> str:
    """$SKINTWIN_MONITOR_DB, else SQLite under `<root>/.monitoring/`."""
    return database_url(ProjectPaths(root).predictions_db)


STAGED = "~staged-"  # starts the batch id of a run still being written: never in a window


class PredictionStore:
    """Append and query predictions.

    Args:
        url: an SQLAlchemy URL (`sqlite:///file.db`, `postgresql+psycopg://...`).
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = open_engine(url)

    def __repr__(self) -> str:
        return f"PredictionStore({mask_url(self.url)!r})"

    def log(self, row: dict) -> None:
        """Write one prediction (its own transaction)."""
        self.log_many([row])

    def log_many(self, rows: Sequence[dict]) -> int:
        """Write many predictions in one transaction: all acknowledged or none.

        A row whose uid is already stored is skipped (a replayed write). Returns the
        number of rows given.
        """
        if not rows:
            return 0
        clean = [stored_row(r) for r in rows]
        with self.engine.begin() as conn:
            conn.execute(self._insert_new(), clean)
        return len(clean)

    def replace_batch(self, batch_id: str, rows: Sequence[dict]) -> int:
        """Store a batch run's rows in place of any earlier run of the same batch, in one
        transaction: a rerun never doubles a batch and a failed write changes nothing."""
        clean = [stored_row({**r, "batch_id": batch_id}) for r in rows]
        with self.engine.begin() as conn:
            conn.execute(delete(predictions).where(predictions.c.batch_id == batch_id))
            if clean:
                conn.execute(self._insert_new(), clean)
        return len(clean)

    def commit_staged(self, staged_id: str, batch_id: str, expected: int | None = None) -> int:
        """A batch written in parts under `staged_id` becomes `batch_id`, in place of any
        earlier run of it, in one transaction; with `expected` rows or not at all (another
        run of the batch may have cleared them). Returns the rows committed."""
        with self.engine.begin() as conn:
            conn.execute(delete(predictions).where(predictions.c.batch_id == batch_id))
            done = conn.execute(
                update(predictions)
                .where(predictions.c.batch_id == staged_id)
                .values(batch_id=batch_id)
            ).rowcount
            if expected is not None and done != expected:
                raise SkinTwinError(
                    f"batch {batch_id}: {done} of its {expected} rows were stored when its "
                    "chunks ended (another run of it at the same time?); nothing committed"
                )
        return int(done)

    def _insert_new(self):
        """INSERT that skips rows whose uid is already there (SQLite and PostgreSQL)."""
        dialect = self.engine.dialect.name
        if dialect in ("sqlite", "postgresql"):
            module = __import__(f"sqlalchemy.dialects.{dialect}", fromlist=["insert"])
            return module.insert(predictions).on_conflict_do_nothing(index_elements=["uid"])
        return insert(predictions)

    def count(self) -> int:
        from sqlalchemy import func

        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(predictions)).scalar())

    def window(
        self,
        since: float | None = None,
        until: float | None = None,
        source: str | None = None,
        model_name: str | None = None,
        model_version: str | None = None,
        columns: tuple[str, ...] = (),
        batch_id: str | None = None,
    ) -> pd.DataFrame:
        """Predictions with since ≤ ts < until (Unix seconds), optionally of one source,
        model and version, and batch, and only `columns` (default all); never the rows of
        a batch still being written (`STAGED`)."""
        staged = predictions.c.batch_id.startswith(STAGED, autoescape=True)
        what = [predictions.c[c] for c in columns] or [predictions]
        q = select(*what).where(or_(predictions.c.batch_id.is_(None), ~staged))
        if since is not None:
            q = q.where(predictions.c.ts >= since)
        if until is not None:
            q = q.where(predictions.c.ts < until)
        if source:
            q = q.where(predictions.c.source == source)
        if model_name:
            q = q.where(predictions.c.model_name == model_name)
        if model_version is not None:
            q = q.where(predictions.c.model_version == str(model_version))
        if batch_id:
            q = q.where(predictions.c.batch_id == batch_id)
        with self.engine.connect() as conn:
            return pd.read_sql(q.order_by(predictions.c.ts), conn)

    def performance(self, since: float | None = None) -> dict:
        """Per model version: count, errors, latency p50/p95/p99 (ms) over the window."""
        frame = self.window(since=since)
        out: dict[str, dict] = {}
        for (name, version), rows in frame.groupby(["model_name", "model_version"]):
            lat = rows["latency_ms"].dropna()
            q = (
                lat.quantile([0.5, 0.95, 0.99])
                if len(lat)
                else pd.Series([None] * 3, [0.5, 0.95, 0.99])
            )
            out[f"{name}/{version}"] = {
                "count": len(rows),
                "errors": int(rows["error"].notna().sum()),
                "latency_ms_p50": _num(q[0.5]),
                "latency_ms_p95": _num(q[0.95]),
                "latency_ms_p99": _num(q[0.99]),
                "first": float(rows["ts"].min()),
                "last": float(rows["ts"].max()),
            }
        return out

    def claim_alert(self, key: str, severity: str, rank: int, now: float, dedup_s: float) -> bool:
        """True when this caller may raise the alert `key` now; records the claim.

        False when the same condition alerted at this rank or higher within `dedup_s`; the
        condition is still marked as seen now, so it shows as ongoing. Each step is one
        atomic statement, so of several concurrent callers one wins.
        """
        row = {"key": key, "severity": severity, "rank": rank, "time": now, "last_seen": now}
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(alert_state), row)
            return True
        except IntegrityError:
            pass
        this = alert_state.c.key == key
        stale = or_(alert_state.c.time <= now - dedup_s, alert_state.c.rank < rank)
        with self.engine.begin() as conn:
            won = conn.execute(update(alert_state).where(this, stale).values(**row)).rowcount
            if not won:
                conn.execute(update(alert_state).where(this).values(last_seen=now))
        return won == 1

    def ongoing_alerts(self, since: float) -> list[dict]:
        """Conditions a check found at or after `since` (alerted then, or suppressed as
        duplicates of an earlier alert): key, severity, first alert time, last seen."""
        q = select(alert_state).where(alert_state.c.last_seen >= since)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(q.order_by(alert_state.c.key))]

    def clear_alert(self, key: str) -> bool:
        """Forget a condition once it is over, so that its return alerts again."""
        with self.engine.begin() as conn:
            return conn.execute(delete(alert_state).where(alert_state.c.key == key)).rowcount > 0

    def log_estimate(
        self, estimate: dict, subject: str, model_name: str, model_version: str
    ) -> int:
        """Keep a label-free estimate (`performance.estimate_window`): a row per slice and
        figure, so its history can be read back and plotted; `anchored_by` says how far a
        labelled audit moved it (`monitoring.anchor`), so a step in a group's series when
        an audit lands or expires explains itself. Returns the rows written."""
        if not estimate.get("available"):
            return 0
        now = time.time()
        rows = [
            {
                "ts": now,
                "subject": subject,
                "model_name": model_name,
                "model_version": str(model_version),
                "slice": name,
                "figure": figure,
                "images": s["images"],
                "value": s[figure]["value"],
                "lo": s[figure]["lo"],
                "hi": s[figure]["hi"],
                "baseline": base,
                "anchored_by": s.get("anchor", {}).get(figure, {}).get("by"),
            }
            for name, s in estimate["slices"].items()
            for figure, base in s["baseline"].items()
        ]
        with self.engine.begin() as conn:
            conn.execute(insert(performance_estimates), rows)
        return len(rows)

    def estimates(self, since: float | None = None) -> pd.DataFrame:
        """Stored label-free estimates at or after `since`, oldest first."""
        q = select(performance_estimates)
        if since is not None:
            q = q.where(performance_estimates.c.ts >= since)
        with self.engine.connect() as conn:
            return pd.read_sql(q.order_by(performance_estimates.c.ts), conn)

    def export_performance(self, path: Path, since: float | None = None) -> dict:
        from skintwin.io import atomic_write_json

        doc = {"generated_at": time.time(), "since": since, "models": self.performance(since)}
        atomic_write_json(path, doc)
        return doc


def _num(v: object) -> float | None:
    return None if v is None or pd.isna(v) else round(float(v), 3)
