"""Integration fixtures: one temporary Prefect API for the whole session."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def prefect_api():
    """Real Prefect flow runs against a throwaway database (not the user's)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield
