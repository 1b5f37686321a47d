"""Per-worker snapshot files: how several Granian workers report one set of metrics.

``serve`` prepares one directory before the workers start (``prepare_directory``).
Each worker owns ``w-<pid>-<random>.json`` there, rewritten atomically (write + rename)
with its cumulative snapshot every flush, and holds an exclusive ``flock`` on the
matching ``.lock`` file for as long as it lives, so the kernel tells any reader whether
the owner is still alive (no pid-reuse guesswork).  A scrape, answered by whichever
worker gets it, sums every file: a dead or restarted worker's counters stay in the sum,
so totals never go backwards.  Dead workers' files are folded into ``archive.json``
under an exclusive lock on the directory (readers take it shared), which keeps the
directory small however often workers restart.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from tollhouse._metrics_families import Totals

ENV_DIR = "TOLLHOUSE_METRICS_DIR"
ARCHIVE = "archive.json"
_DIR_LOCK = ".dir.lock"


def default_directory() -> Path:
    shm = Path("/dev/shm")  # noqa: S108 - tmpfs when present: rewrites never touch a disk
    base = shm if shm.is_dir() and os.access(shm, os.W_OK) else Path(tempfile.gettempdir())
    return base / f"tollhouse-metrics-{os.getpid()}"


def prepare_directory(path: str | Path | None = None) -> Path:
    """Create (or empty) the shared directory and export it to child processes."""
    directory = Path(path) if path is not None else default_directory()
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    for entry in directory.iterdir():
        if entry.name.startswith("w-") or entry.name in (ARCHIVE, _DIR_LOCK):
            entry.unlink(missing_ok=True)
    os.environ[ENV_DIR] = str(directory)
    return directory


def remove_directory(directory: str | Path) -> None:
    """Remove a directory made by ``prepare_directory`` (at ``serve`` exit)."""
    d = Path(directory)
    if not d.is_dir():
        return
    for entry in d.iterdir():
        if entry.name.startswith("w-") or entry.name in (ARCHIVE, _DIR_LOCK):
            entry.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        d.rmdir()


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _read(path: Path) -> dict[str, Any] | None:
    try:
        data = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _owner_alive(lock_path: Path) -> bool:
    try:
        fd = os.open(lock_path, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # also drops the probe's lock when it was granted
    return False


@contextlib.contextmanager
def _dir_lock(directory: Path, mode: int) -> Iterator[None]:
    fd = os.open(directory / _DIR_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, mode)
        yield
    finally:
        os.close(fd)


class WorkerFile:
    """The calling process's own snapshot file (a fork gets a new one on first write)."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self._pid: int | None = None
        self._fd: int | None = None
        self.ident = ""

    @property
    def path(self) -> Path:
        return self.directory / f"w-{self.ident}.json"

    def _claim(self) -> None:
        pid = os.getpid()
        if self._pid == pid:
            return
        if self._fd is not None:  # inherited over fork: the lock stays the parent's
            os.close(self._fd)
        self.ident = f"{pid}-{secrets.token_hex(4)}"
        fd = os.open(self.directory / f"w-{self.ident}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        self._fd, self._pid = fd, pid

    def write(self, snapshot: dict[str, Any]) -> None:
        data = orjson.dumps(snapshot)
        self._claim()
        try:
            _atomic_write(self.path, data)
        except FileNotFoundError:  # the directory was removed under us: make it again
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            self.release()
            self._claim()
            _atomic_write(self.path, data)

    def release(self) -> None:
        """Give up the lock (process exit); the counters stay for the others to sum."""
        if self._fd is not None and self._pid == os.getpid():
            os.close(self._fd)
        self._fd = self._pid = None


def collect(directory: str | Path) -> Totals:
    """Sum every worker's snapshot in ``directory`` (compacting dead workers' files)."""
    d = Path(directory)
    totals = Totals()
    dead: list[str] = []
    with _dir_lock(d, fcntl.LOCK_SH):
        archive = _read(d / ARCHIVE) or {}
        merged = set(archive.get("merged", ()))
        totals.add(archive, alive=False)
        for entry in d.glob("w-*.json"):
            ident = entry.name[2:-5]
            if ident in merged:
                continue
            snap = _read(entry)
            if snap is None:
                continue
            alive = _owner_alive(d / f"w-{ident}.lock")
            totals.add(snap, alive=alive)
            if not alive:
                dead.append(ident)
    if dead:
        compact(d)
    return totals


def compact(directory: str | Path) -> int:
    """Fold dead workers' snapshots into the archive; returns how many were folded."""
    d = Path(directory)
    with _dir_lock(d, fcntl.LOCK_EX):
        archive = _read(d / ARCHIVE) or {}
        merged = {m for m in archive.get("merged", ()) if (d / f"w-{m}.json").exists()}
        acc = Totals()
        acc.add(archive, alive=False)
        folded: list[str] = []
        for entry in d.glob("w-*.json"):
            ident = entry.name[2:-5]
            if ident in merged or _owner_alive(d / f"w-{ident}.lock"):
                continue
            snap = _read(entry)
            if snap is not None:
                acc.add(snap, alive=False)
            folded.append(ident)
        if not folded:
            return 0
        out = acc.dead_part()
        out["merged"] = sorted(merged | set(folded))
        _atomic_write(d / ARCHIVE, orjson.dumps(out))
        for ident in folded:
            for suffix in (".json", ".json.tmp", ".lock"):
                (d / f"w-{ident}{suffix}").unlink(missing_ok=True)
        return len(folded)
