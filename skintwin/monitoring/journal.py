"""A local journal for predictions the store could not take (a database locked past its busy
timeout, a server restarting): rows are spilled to files and replayed later, so an
acknowledged prediction is never dropped.

Files are JSON lines under `.monitoring/journal/`, written whole and flushed to disk
before the caller goes on. Replay claims a file by renaming it, so two processes never
replay the same rows; rows carry their uid, so a replay cut short and repeated never
doubles one.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
import uuid
from pathlib import Path

log = logging.getLogger(__name__)
_STALE_CLAIM_S = 600  # a claim held longer belonged to a process that died mid-replay


class Journal:
    """Spill and replay rows; counts what it did (for the service's /metrics)."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.spilled = 0
        self.replayed = 0

    def spill(self, rows: list[dict]) -> Path:
        """Write `rows` to a new journal file, durably."""
        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"{time.time():.6f}-{os.getpid()}-{uuid.uuid4().hex[:8]}.jsonl"
        tmp, path = self.folder / f".{name}.tmp", self.folder / name
        with tmp.open("w") as fh:
            fh.writelines(json.dumps(r, default=str) + "\n" for r in rows)
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(path)
        self.spilled += len(rows)
        log.warning("prediction store unavailable: %d rows kept in %s", len(rows), path)
        return path

    def pending(self) -> int:
        """Rows waiting in journal files (claimed ones included)."""
        if not self.folder.is_dir():
            return 0
        files = [*self.folder.glob("[0-9]*.jsonl"), *self.folder.glob(".claimed-*.jsonl")]
        return sum(_rows_in(p) for p in files)

    def replay(self, write) -> int:
        """Hand every journal file's rows to `write(rows)`; a file is deleted once written.

        Stops at the first failure (the store is still unavailable) and leaves that file.
        """
        if not self.folder.is_dir():
            return 0
        self._release_stale_claims()
        done = 0
        for path in sorted(self.folder.glob("[0-9]*.jsonl")):
            claimed = path.with_name(f".claimed-{os.getpid()}-{path.name}")
            try:
                path.rename(claimed)
                # a rename keeps the spill's time: the claim's age is counted from now
                os.utime(claimed)
                rows = [json.loads(line) for line in claimed.read_text().splitlines() if line]
            except FileNotFoundError:  # another replayer claimed it first
                continue
            try:
                write(rows)
            except Exception:
                with contextlib.suppress(FileNotFoundError):  # unless another took it over
                    claimed.rename(path)
                break
            claimed.unlink(missing_ok=True)  # the rows carry their uid: written once either way
            done += len(rows)
        self.replayed += done
        if done:
            log.info("replayed %d journalled predictions into the store", done)
        return done

    def _release_stale_claims(self) -> None:
        for claimed in self.folder.glob(".claimed-*.jsonl"):
            try:
                if time.time() - claimed.stat().st_mtime > _STALE_CLAIM_S:
                    claimed.rename(self.folder / claimed.name.split("-", 2)[2])
            except FileNotFoundError:  # its replay finished (or another process took it)
                continue


def _rows_in(path: Path) -> int:
    """Rows in one journal file; 0 when a replay (in this or another process) removed it
    after it was listed, which /metrics racing the replayer meets on a busy service."""
    try:
        return len(path.read_text().splitlines())
    except FileNotFoundError:
        return 0
