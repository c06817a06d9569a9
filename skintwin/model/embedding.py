"""Image embeddings from the detector's own backbone, for drift.

One backbone layer, fixed per version (`evaluate.embed_layer`), is read during the normal
prediction pass by a forward hook: no second forward, so storing an embedding costs almost
nothing at `/predict`. Global average pooling gives one vector per image (its channels); a
whitening PCA fitted on the training split when the version is evaluated, and stored with
it (`embedding.npz`), reduces that to `dims` ≤ 128 numbers of unit variance each, which is
what the store keeps (float16) and the drift check compares.
"""

from __future__ import annotations

import io
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from skintwin.errors import SkinTwinError

MAX_DIMS = 128


@dataclass(frozen=True)
class Projection:
    """Pooled layer output → whitened principal components."""

    layer: int
    mean: np.ndarray  # (channels,)
    components: np.ndarray  # (dims, channels)
    scale: np.ndarray  # (dims,) standard deviation of each component on the fitting images

    @property
    def dims(self) -> int:
        return int(self.components.shape[0])

    @classmethod
    def fit(cls, pooled: np.ndarray, layer: int, dims: int) -> Projection:
        """Fit on pooled outputs (images × channels); `dims` is capped by what they allow."""
        pooled = np.asarray(pooled, np.float64)
        if pooled.ndim != 2 or len(pooled) < 3:
            raise SkinTwinError(f"embedding projection: needs ≥ 3 images, got {len(pooled)}")
        mean = pooled.mean(axis=0)
        _, sv, vt = np.linalg.svd(pooled - mean, full_matrices=False)
        scale = sv / np.sqrt(len(pooled) - 1)
        keep = int(min(dims, MAX_DIMS, np.count_nonzero(scale > scale[0] * 1e-6)))
        return cls(layer, mean, vt[:keep], scale[:keep])

    def apply(self, pooled: np.ndarray) -> np.ndarray:
        """Images × dims, float32."""
        centred = np.asarray(pooled, np.float64) - self.mean
        return (centred @ self.components.T / self.scale).astype(np.float32)

    def save(self, path: Path) -> None:
        from skintwin.io import atomic_write_bytes

        buf = io.BytesIO()
        np.savez(buf, layer=self.layer, mean=self.mean, components=self.components,
                 scale=self.scale)  # fmt: skip
        atomic_write_bytes(Path(path), buf.getvalue())

    @classmethod
    def load(cls, path: Path) -> Projection:
        with np.load(path) as doc:
            return cls(int(doc["layer"]), doc["mean"], doc["components"], doc["scale"])


def to_bytes(vector) -> bytes:
    """An embedding as the store keeps it: float16, little-endian."""
    return np.asarray(vector, "<f2").tobytes()


def matrix(cells) -> np.ndarray:
    """Embeddings as a float32 matrix (rows × dims), from stored bytes or lists of numbers."""
    cells = list(cells)
    if not cells:
        return np.zeros((0, 0), np.float32)
    if isinstance(cells[0], bytes | bytearray | memoryview):
        blob = b"".join(bytes(c) for c in cells)
        return np.frombuffer(blob, "<f2").reshape(len(cells), -1).astype(np.float32)
    return np.asarray([np.asarray(c, np.float32) for c in cells], np.float32)


class Tap:
    """Pooled feature maps recorded during a prediction, per calling thread.

    Hooks stay registered on their modules; they record only while a thread has asked
    (`start`), into that thread's own list, so concurrent predictions never see each
    other's images. `pick` turns a module's output into rows (images × channels).
    """

    def __init__(self) -> None:
        self._hooked: dict[int, object] = {}  # id(module) -> module
        self._local = threading.local()
        self._lock = threading.Lock()

    def attach(self, module, pick) -> None:
        """Hook `module` once; its outputs pass through `pick` into the calling thread's
        record while that thread records."""

        def record(_module, _inputs, output) -> None:
            if getattr(self._local, "on", False):
                self._local.found.append(pick(output))

        with self._lock:
            if id(module) not in self._hooked:
                module.register_forward_hook(record)
                self._hooked[id(module)] = module  # held, so its id is never reused

    def start(self) -> None:
        self._local.on, self._local.found = True, []

    def rows(self, n_images: int) -> np.ndarray:
        """The last `n_images` rows recorded since `start` (a warm-up pass, when the
        backend runs one, comes first)."""
        found = getattr(self._local, "found", [])
        rows = np.concatenate(found) if found else np.zeros((0, 0), np.float32)
        if len(rows) < n_images:
            raise SkinTwinError(f"embedding: got {len(rows)} rows for {n_images} images")
        return rows[-n_images:]

    def stop(self) -> None:
        """This thread records nothing more (after a prediction, failed or not)."""
        self._local.on, self._local.found = False, []


def pool_feature_map(output) -> np.ndarray:
    """A layer's feature map (batch × channels × h × w), globally average-pooled."""
    if getattr(output, "ndim", 0) != 4:  # e.g. a layer that returns several
        raise SkinTwinError("evaluate.embed_layer: that layer has no feature map")
    return output.float().mean(dim=(2, 3)).detach().cpu().numpy()


def onnx_embedding(output) -> np.ndarray:
    """The embedding output of an exported model (its second graph output)."""
    if not isinstance(output, list | tuple) or len(output) < 2:
        raise SkinTwinError("this ONNX export has no embedding output; export it again")
    value = output[1]
    return value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)
