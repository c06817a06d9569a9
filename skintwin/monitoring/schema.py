"""The prediction store's tables and how a database is opened (any SQLAlchemy URL).

SQLite runs in WAL mode with a busy timeout (`SKINTWIN_STORE_BUSY_TIMEOUT_S`, default 60),
so several processes can write at once; PostgreSQL works by URL (the `postgres` extra
installs its driver). Tables are created when missing, and columns added since an older
release are added in place, so an existing store keeps its rows.
"""

from __future__ import annotations

import math
import os

from sqlalchemy import (
    Column,
    Engine,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    inspect,
    text,
)
from sqlalchemy.exc import SQLAlchemyError

from skintwin.errors import SkinTwinError
from skintwin.names import IMAGE_FEATURES
from skintwin.redact import mask_url

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
COLUMNS = [c.name for c in predictions.columns if c.name != "id"]
_DRIVERS = {"psycopg": "psycopg[binary]", "psycopg2": "psycopg2-binary", "pymysql": "pymysql"}


def busy_timeout_s() -> float:
    raw = os.environ.get("SKINTWIN_STORE_BUSY_TIMEOUT_S", "60")
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not 0 < value <= 3600:
        raise SkinTwinError(f"SKINTWIN_STORE_BUSY_TIMEOUT_S: {raw!r} is not 0 < seconds ≤ 3600")
    return value


def _sqlite_pragmas(timeout_ms: int):
    def apply(dbapi_conn, _record) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
        cur.execute("PRAGMA synchronous=NORMAL")  # durable at checkpoints; safe with WAL
        cur.execute(f"PRAGMA busy_timeout={timeout_ms}")  # wait for other writers
        cur.close()

    return apply


def _add_missing_columns(engine: Engine) -> None:
    """Columns a newer release added to an existing table (nullable, so rows stay valid)."""
    found = inspect(engine)
    for table in (predictions, alert_state):
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
    try:
        engine = create_engine(url, future=True)
        if engine.dialect.name == "sqlite":
            pragmas = _sqlite_pragmas(int(busy_timeout_s() * 1000))
            event.listen(engine, "connect", pragmas)
        metadata.create_all(engine)
        _add_missing_columns(engine)
    except ModuleNotFoundError as exc:
        hint = _DRIVERS.get(exc.name or "", exc.name)
        raise SkinTwinError(
            f"prediction store {mask_url(url)}: its database driver is not installed "
            f"(pip install '{hint}'; for PostgreSQL: pip install -e '.[postgres]')"
        ) from None
    except (SQLAlchemyError, ValueError) as exc:
        reason = mask_url(str(exc).splitlines()[0])
        raise SkinTwinError(
            f"prediction store {mask_url(url)} cannot be opened: {reason}"
        ) from None
    return engine
