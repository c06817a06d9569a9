"""The prediction store: one row per prediction, in any SQLAlchemy database.

SQLite (the default, `.monitoring/predictions.db`) runs in WAL mode with a busy timeout, so
several processes can write at once without losing rows; PostgreSQL works by URL
(`SKINTWIN_MONITOR_DB`). Images are never stored; their features are. The same database
keeps the alert de-duplication state, claimed with single atomic statements so that
concurrent drift checks raise one alert.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from sqlalchemy import (
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    delete,
    event,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from skintwin.data.features import IMAGE_FEATURES
from skintwin.errors import SkinTwinError
from skintwin.project import ProjectPaths

metadata = MetaData()
predictions = Table(
    "predictions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ts", Float, nullable=False),  # Unix time, seconds
    Column("model_name", String(200), nullable=False),
    Column("model_version", String(50), nullable=False),
    Column("source", String(200), nullable=False, default=""),
    Column("latency_ms", Float),
    Column("error", Text),
    Column("n_detections", Integer),
    Column("mean_confidence", Float),
    Column("class_counts", Text),  # JSON {class_name: count}
    Column("detections", Text),  # JSON list of {class_name, confidence, box}
    *[Column(name, Float) for name in IMAGE_FEATURES],
    Column("tone_group", String(20)),
    Column("image_ref", Text),  # a path or id, never the pixels unless configured
    Index("ix_predictions_ts", "ts"),
    Index("ix_predictions_model", "model_name", "model_version"),
)
alert_state = Table(
    "alert_state",
    metadata,
    Column("key", String(300), primary_key=True),  # kind:subject of an ongoing condition
    Column("severity", String(20), nullable=False),
    Column("rank", Integer, nullable=False),  # severity as a number, for the atomic claim
    Column("time", Float, nullable=False),  # when it last alerted (Unix seconds)
)
COLUMNS = [c.name for c in predictions.columns if c.name != "id"]


def default_url(root: Path) -> str:
    """$SKINTWIN_MONITOR_DB, else SQLite under `<root>/.monitoring/`."""
    url = os.environ.get("SKINTWIN_MONITOR_DB")
    if url:
        return url
    path = ProjectPaths(root).predictions_db
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
    cur.execute("PRAGMA synchronous=NORMAL")  # durable at checkpoints; safe with WAL
    cur.execute("PRAGMA busy_timeout=60000")  # wait for other writers instead of failing
    cur.close()


class PredictionStore:
    """Append and query predictions.

    Args:
        url: an SQLAlchemy URL (`sqlite:///file.db`, `postgresql+psycopg://...`).
    """

    def __init__(self, url: str) -> None:
        self.url = url
        try:
            self.engine = create_engine(url, future=True)
            if self.engine.dialect.name == "sqlite":
                event.listen(self.engine, "connect", _sqlite_pragmas)
            metadata.create_all(self.engine)
        except (SQLAlchemyError, ValueError) as exc:
            raise SkinTwinError(f"prediction store {url!r} cannot be opened: {exc}") from None

    def log(self, row: dict) -> None:
        """Write one prediction (its own transaction)."""
        self.log_many([row])

    def log_many(self, rows: Sequence[dict]) -> int:
        """Write many predictions in one transaction: all acknowledged or none."""
        if not rows:
            return 0
        clean = [_normalise(r) for r in rows]
        with self.engine.begin() as conn:
            conn.execute(insert(predictions), clean)
        return len(clean)

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
    ) -> pd.DataFrame:
        """Predictions with since ≤ ts < until (Unix seconds), optionally of one source/model."""
        q = select(predictions)
        if since is not None:
            q = q.where(predictions.c.ts >= since)
        if until is not None:
            q = q.where(predictions.c.ts < until)
        if source:
            q = q.where(predictions.c.source == source)
        if model_name:
            q = q.where(predictions.c.model_name == model_name)
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

        False when the same condition alerted at this rank or higher within `dedup_s`.
        Each step is one atomic statement, so of several concurrent callers one wins.
        """
        row = {"key": key, "severity": severity, "rank": rank, "time": now}
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(alert_state), row)
            return True
        except IntegrityError:
            pass
        stale = or_(alert_state.c.time <= now - dedup_s, alert_state.c.rank < rank)
        with self.engine.begin() as conn:
            done = conn.execute(
                update(alert_state).where(alert_state.c.key == key, stale).values(**row)
            )
        return done.rowcount == 1

    def clear_alert(self, key: str) -> bool:
        """Forget a condition once it is over, so that its return alerts again."""
        with self.engine.begin() as conn:
            return conn.execute(delete(alert_state).where(alert_state.c.key == key)).rowcount > 0

    def export_performance(self, path: Path, since: float | None = None) -> dict:
        from skintwin.io import atomic_write_json

        doc = {"generated_at": time.time(), "since": since, "models": self.performance(since)}
        atomic_write_json(path, doc)
        return doc


def _num(v: object) -> float | None:
    return None if v is None or pd.isna(v) else round(float(v), 3)


def _normalise(row: dict) -> dict:
    out = {k: row.get(k) for k in COLUMNS}
    out["ts"] = float(row.get("ts") or time.time())
    out["source"] = row.get("source") or ""
    out["model_version"] = str(row.get("model_version", ""))
    for key in ("class_counts", "detections"):
        if out[key] is not None and not isinstance(out[key], str):
            out[key] = json.dumps(out[key])
    if not out["model_name"]:
        raise SkinTwinError("prediction row has no model_name")
    return out
