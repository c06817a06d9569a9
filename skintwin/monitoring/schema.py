"""The prediction store's tables, opened on any SQLAlchemy URL (`skintwin.db`).

Tables are created when missing, and columns and indexes added since an older release are
added in place, so an existing store keeps its rows.
"""

from __future__ import annotations

import json
import os
import time

from sqlalchemy import (
    Column,
    Engine,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    inspect,
    text,
)

from skintwin import db
from skintwin.errors import SkinTwinError
from skintwin.model.embedding import to_bytes
from skintwin.names import IMAGE_FEATURES

metadata = MetaData()
predictions = Table(
    "predictions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("uid", String(32)),  # one id per prediction: a replayed write never doubles it
    Column("batch_id", String(64)),  # a batch run's rows, replaced as a whole on a rerun
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
    Column("embedding", LargeBinary),  # the champion's backbone embedding, float16
    Column("image_ref", Text),  # a path or id, never the pixels unless configured
    Index("ix_predictions_ts", "ts"),
    Index("ix_predictions_model", "model_name", "model_version"),
    Index("ix_predictions_uid", "uid", unique=True),
    Index("ix_predictions_batch", "batch_id"),
)
alert_state = Table(
    "alert_state",
    metadata,
    Column("key", String(300), primary_key=True),  # kind:subject of an ongoing condition
    Column("severity", String(20), nullable=False),
    Column("rank", Integer, nullable=False),  # severity as a number, for the atomic claim
    Column("time", Float, nullable=False),  # when it last alerted (Unix seconds)
    Column("last_seen", Float),  # when a check last found it (alerted or suppressed)
)
performance_estimates = Table(  # the drift flow's label-free estimates, one row per figure
    "performance_estimates",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ts", Float, nullable=False),
    Column("subject", String(200), nullable=False),  # the checked window: a source or "all"
    Column("model_name", String(200), nullable=False),
    Column("model_version", String(50), nullable=False),
    Column("slice", String(40), nullable=False),  # "all" or a tone group
    Column("figure", String(20), nullable=False),  # mAP50, precision, recall
    Column("images", Integer),
    Column("value", Float),
    Column("lo", Float),  # the bootstrap interval
    Column("hi", Float),
    Column("baseline", Float),  # the same estimate on the version's test split
    Column("anchored_by", Float),  # value and baseline moved by a labelled audit; else null
    Index("ix_estimates_ts", "ts"),
)
audit_errors = Table(  # each labelled audit's error of the label-free estimate, per figure
    "audit_errors",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ts", Float, nullable=False),  # when the audit ran
    Column("subject", String(200), nullable=False),  # the audited sample
    Column("model_name", String(200), nullable=False),
    Column("model_version", String(50), nullable=False),
    Column("slice", String(40), nullable=False),  # "all" or a tone group
    Column("figure", String(20), nullable=False),  # mAP50, precision, recall
    Column("images", Integer, nullable=False),
    Column("error", Float, nullable=False),  # estimated minus true, on the audited photos
    Column("sd", Float),  # the true figure's sampling error (half-sample spread)
    Index("ix_audit_errors_model", "model_name", "model_version", "ts"),
)
COLUMNS = [c.name for c in predictions.columns if c.name != "id"]


def _add_missing_columns(engine: Engine) -> None:
    """Columns a newer release added to an existing table (nullable, so rows stay valid)."""
    found = inspect(engine)
    for table in (predictions, alert_state, performance_estimates):
        have = {c["name"] for c in found.get_columns(table.name)}
        for column in table.columns:
            if column.name not in have:
                kind = column.type.compile(engine.dialect)
                with engine.begin() as conn:
                    conn.execute(text(f"ALTER TABLE {table.name} ADD COLUMN {column.name} {kind}"))
        for index in table.indexes:  # create_all adds no index to a table that exists
            index.create(engine, checkfirst=True)


def open_engine(url: str) -> Engine:
    """An engine on `url` with the tables ready; errors name the URL without its password."""
    return db.open_engine(url, metadata, "prediction store", _add_missing_columns)


def new_uid() -> str:
    """A row's id, in time order (nanoseconds, then 8 random bytes): the unique index then
    grows at its end. Random ids put each insert anywhere in it, and batched logging ran at
    half its rate once the table held 200k rows (the monitoring bench)."""
    return f"{time.time_ns():016x}{os.urandom(8).hex()}"


def stored_row(row: dict) -> dict:
    """A prediction row as the `predictions` table holds it: its columns only, an id and a
    time when it has none, JSON and float16 bytes where the columns want them."""
    out = {k: row.get(k) for k in COLUMNS}
    out["uid"] = row.get("uid") or new_uid()
    out["ts"] = float(row.get("ts") or time.time())
    out["source"] = row.get("source") or ""
    out["model_version"] = str(row.get("model_version", ""))
    for key in ("class_counts", "detections"):
        if out[key] is not None and not isinstance(out[key], str):
            out[key] = json.dumps(out[key])
    if out["embedding"] is not None and not isinstance(out["embedding"], bytes):
        out["embedding"] = to_bytes(out["embedding"])
    if not out["model_name"]:
        raise SkinTwinError("prediction row has no model_name")
    return out
