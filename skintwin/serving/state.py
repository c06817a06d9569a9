"""What the service holds while it runs: the served model (swapped on reload), the
prediction monitor, and its Prometheus metrics."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from skintwin.errors import SkinTwinError
from skintwin.model.loaded import LoadedModel
from skintwin.monitoring.monitor import ModelMonitor
from skintwin.params import load_params
from skintwin.project import ProjectPaths, resolve_root
from skintwin.serving.loader import ModelLoader
from skintwin.serving.settings import Settings

log = logging.getLogger(__name__)


class ModelHolder:
    """The served model; replaced atomically on reload so in-flight requests finish."""

    def __init__(self, settings: Settings, project_dir: Path | None) -> None:
        self.loader: ModelLoader | None = None
        if settings.weights:
            projection = Path(settings.embedding) if settings.embedding else None
            self.model = LoadedModel.from_weights(settings.weights, projection)
        else:
            self.loader = ModelLoader(project_dir=project_dir)
            self.model = next(iter(self.loader.load_all_models().values()))
        self.lock = threading.Lock()

    def reload_if_moved(self) -> bool:
        if self.loader is None:
            return False
        with self.lock:
            if self.loader.reload_if_moved():
                self.model = next(iter(self.loader.models.values()))
                log.info("now serving %s version %s", self.model.name, self.model.version)
                return True
        return False


class Metrics:
    """The service's Prometheus metrics, in a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "skintwin_requests_total", "Requests", ["endpoint", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "skintwin_request_latency_seconds",
            "Request latency",
            ["endpoint"],
            registry=self.registry,
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.model_info = Gauge(
            "skintwin_model_info", "Served model", ["name", "version"], registry=self.registry
        )
        self.journal = Gauge(
            "skintwin_store_journal_rows",
            "Predictions the store could not take at once: spilled to the local journal, "
            "replayed from it since start, and pending now",
            ["state"],
            registry=self.registry,
        )


class ServiceState:
    """Everything a request needs, kept on `app.state.service`."""

    def __init__(
        self, settings: Settings, project_dir: str | Path | None, store_url: str | None
    ) -> None:
        self.settings = settings
        self.holder = ModelHolder(settings, Path(project_dir) if project_dir else None)
        self.stored_conf, self.imgsz = _as_monitored(project_dir)
        self.monitor = ModelMonitor(store_url, project_dir=project_dir)
        self.metrics = Metrics()
        self.stop = threading.Event()
        self.inflight = 0  # admitted requests not yet answered (event-loop thread only)

    def poll(self) -> None:
        """Until stopped: follow the alias, and replay journalled predictions into the
        store. An outage of either must not stop serving."""
        while not self.stop.wait(self.settings.reload_interval_s):
            try:
                self.holder.reload_if_moved()
            except Exception as exc:
                log.warning("reload check failed: %s", exc)
            try:  # one failed replay must not end the loop (and with it every reload)
                self.monitor.replay_journal()
            except Exception as exc:
                log.warning("journal replay failed: %s", exc)


def _as_monitored(project_dir: str | Path | None) -> tuple[float, int | None]:
    """The confidence the store keeps detections from, and the size photos are predicted
    at: the project's `monitor.conf` and `monitor.imgsz`, which the reference, batch scoring
    and the label-free estimator assume. Without a project (a `.pt` served on its own):
    0.25 and the model's own size."""
    try:
        paths = ProjectPaths(resolve_root(project_dir))
    except SkinTwinError:
        return 0.25, None
    monitor = load_params(paths.params).monitor
    return monitor.conf, monitor.imgsz
