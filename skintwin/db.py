"""How the project opens a SQL database (any SQLAlchemy URL): the prediction store and the
registry history share one, SQLite by default, PostgreSQL by URL.

SQLite runs in WAL mode with a busy timeout (`SKINTWIN_STORE_BUSY_TIMEOUT_S`, default 60),
so several processes can write at once. Errors name the URL without its password.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import Engine, MetaData, create_engine, event
from sqlalchemy.exc import SQLAlchemyError

from skintwin.errors import SkinTwinError
from skintwin.io import env_number
from skintwin.redact import mask_url

_DRIVERS = {"psycopg": "psycopg[binary]", "psycopg2": "psycopg2-binary", "pymysql": "pymysql"}


def database_url(default: Path) -> str:
    """$SKINTWIN_MONITOR_DB, else SQLite at `default` (its folder created)."""
    url = os.environ.get("SKINTWIN_MONITOR_DB")
    if url:
        return url
    default.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{default}"


def busy_timeout_s() -> float:
    return env_number("SKINTWIN_STORE_BUSY_TIMEOUT_S", 60.0, 0.001, 3600.0)


def _sqlite_pragmas(timeout_ms: int):
    def apply(dbapi_conn, _record) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
        cur.execute("PRAGMA synchronous=NORMAL")  # durable at checkpoints; safe with WAL
        cur.execute(f"PRAGMA busy_timeout={timeout_ms}")  # wait for other writers
        cur.close()

    return apply


def open_engine(
    url: str,
    metadata: MetaData,
    what: str,
    migrate: Callable[[Engine], None] | None = None,
) -> Engine:
    """An engine on `url` with `metadata`'s tables ready (then `migrate`, if given).

    `what` names the database in errors ("prediction store").
    """
    try:
        engine = create_engine(url, future=True)
        if engine.dialect.name == "sqlite":
            pragmas = _sqlite_pragmas(int(busy_timeout_s() * 1000))
            event.listen(engine, "connect", pragmas)
        metadata.create_all(engine)
        if migrate is not None:
            migrate(engine)
    except ModuleNotFoundError as exc:
        hint = _DRIVERS.get(exc.name or "", exc.name)
        raise SkinTwinError(
            f"{what} {mask_url(url)}: its database driver is not installed "
            f"(pip install '{hint}'; for PostgreSQL: pip install -e '.[postgres]')"
        ) from None
    except (SQLAlchemyError, ValueError) as exc:
        reason = mask_url(str(exc).splitlines()[0])
        raise SkinTwinError(f"{what} {mask_url(url)} cannot be opened: {reason}") from None
    return engine
