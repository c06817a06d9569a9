"""Atomic writes: an output is either complete or absent, never half-written, and a
step's output folder never replaces a folder it does not own."""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from skintwin.errors import SkinTwinError

MARKER = ".skintwin-output"  # written into every step output: which step owns the folder


def check_output_dir(target: Path, owner: str, inputs: Sequence[Path] = ()) -> Path:
    """The resolved `target`, if a step named `owner` may replace it.

    Refused: a folder that holds one of `inputs` or lies inside one, and a folder that is
    not empty and whose marker file does not name the same step. A folder of the step's own
    names without a marker is refused too: a plain YOLO dataset (`images/`, `labels/`,
    `data.yaml`) looks just like preprocess's or generate's output, and `--out` pointed at
    one must not replace it. DVC's own `.gitignore` does not count: DVC writes it again.
    """
    target = Path(target).resolve()
    for given in inputs:
        source = Path(given).resolve()
        if source == target or target in source.parents:
            raise SkinTwinError(f"{target}: the output folder holds the input {given}")
        if source in target.parents:
            raise SkinTwinError(f"{target}: the output folder lies inside the input {given}")
    if target.exists():
        if not target.is_dir():
            raise SkinTwinError(f"{target}: exists and is not a folder")
        marker = target / MARKER
        entries = {p.name for p in target.iterdir()} - {MARKER, ".gitignore"}
        owned = marker.is_file() and marker.read_text().strip() == owner
        if not owned and entries:
            raise SkinTwinError(
                f"{target}: not empty and not an earlier `{owner}` output (no {MARKER} "
                f"naming it); choose an empty or new folder"
            )
    return target


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_dir(
    target: Path,
    owner: str | None = None,
    inputs: Sequence[Path] = (),
    shared: bool = False,
) -> Iterator[Path]:
    """Yield a temporary sibling folder that replaces `target` on success, vanishes on error.

    With `owner` (a step name) the target is checked first (`check_output_dir`) and marked
    as that step's output. One writer per output (DVC holds its repo lock): leftovers of a
    writer that was killed (`.<name>.tmp-*`) are removed first, so a re-run starts clean.
    `shared`: several processes may write the same content at once (the model cache): only
    leftovers an hour old are removed, and a target another writer finished first is kept,
    not replaced under its readers.
    """
    target = check_output_dir(target, owner, inputs) if owner else Path(target).resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    for stale in target.parent.glob(f".{target.name}.tmp-*"):
        if not shared or _age_s(stale) > 3600:
            shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    tmp.chmod(0o777 & ~_umask())  # mkdtemp makes it private; the output is a normal folder
    try:
        yield tmp
        if owner:
            (tmp / MARKER).write_text(owner + "\n")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if shared and target.exists():  # another writer's copy of the same content came first
        shutil.rmtree(tmp, ignore_errors=True)
        return
    old = target.with_name(f".{target.name}.old-{os.getpid()}")
    if target.exists():
        target.rename(old)
    tmp.rename(target)
    shutil.rmtree(old, ignore_errors=True)


def _age_s(path: Path) -> float:
    """Seconds since `path` last changed; 0 if it is gone (another writer cleaned it)."""
    try:
        return time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return 0.0


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private; this is a normal file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, obj: object) -> None:
    atomic_write_bytes(
        path, (json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n").encode()
    )


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file's bytes, read in blocks (weights run to hundreds of MB)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_record(path: Path, keys: Sequence[str], remedy: str) -> dict:
    """The JSON object in `path`, holding `keys`; else an error naming the file and what
    is wrong with it, and `remedy` (what to run to write it again)."""
    try:
        doc = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise SkinTwinError(f"{path}: missing; {remedy}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SkinTwinError(f"{path}: unreadable ({exc}); {remedy}") from None
    missing = [k for k in keys if not isinstance(doc, dict) or k not in doc]
    if missing:
        raise SkinTwinError(f"{path}: no {', '.join(missing)}; {remedy}")
    return doc


@contextmanager
def held(path: Path, what: str, timeout_s: float, poll_s: float = 2.0, waiting=None):
    """Hold an exclusive lock on file `path` (an OS lock: released when the process ends,
    however it ends) for the body. While another process holds it, `waiting(holder)` is
    called once and the lock is tried every `poll_s`; after `timeout_s` an error names
    `what` and the holder."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as fh:
        deadline, told = time.monotonic() + timeout_s, False
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                fh.seek(0)
                holder = fh.read().strip() or "another process"
                if time.monotonic() >= deadline:
                    raise SkinTwinError(
                        f"{what}: {holder} holds {path}; wait for it to end, or stop it"
                    ) from None
                if waiting is not None and not told:
                    waiting(holder)
                    told = True
                time.sleep(poll_s)
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} since {time.strftime('%Y-%m-%dT%H:%M:%S')}\n")
        fh.flush()
        try:
            yield
        finally:
            fh.seek(0)
            fh.truncate()
            fcntl.flock(fh, fcntl.LOCK_UN)


def env_number(name: str, default: float, low: float, high: float) -> float:
    """A number from environment variable `name` (`default` when unset), checked to lie in
    [low, high]: a bad value is an error naming the variable, never a silent nan or 0."""
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not low <= value <= high:
        raise SkinTwinError(f"{name}: {raw!r} is not a number in [{low:g}, {high:g}]")
    return value
