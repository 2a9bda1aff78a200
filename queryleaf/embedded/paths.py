"""The data directory: where things are, private file writes, and the directory lock.

Everything in it belongs to one user: the directory is 0700 and every file queryleaf writes is
created 0600 (never made private after the fact, so there is no moment when it is readable).
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import platformdirs

from queryleaf.errors import EngineError

try:
    import fcntl
except ImportError:  # Windows: the embedded default is POSIX-only (docs/embedded.md)
    fcntl = None  # type: ignore[assignment]

DATA_DIR_ENV = "QUERYLEAF_DATA_DIR"
LOCK_TIMEOUT = 60.0
PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


@dataclass(frozen=True)
class DataDir:
    """The files of one data directory (docs/embedded.md, "The data directory")."""

    root: Path

    @property
    def storage(self) -> Path:
        return self.root / "db"

    @property
    def record(self) -> Path:
        return self.root / "server.json"

    @property
    def credentials(self) -> Path:
        return self.root / "credentials.json"

    @property
    def log(self) -> Path:
        return self.root / "server.log"

    @property
    def users(self) -> Path:
        return self.root / "users"

    @property
    def lock(self) -> Path:
        return self.root / "lock"

    @property
    def config(self) -> Path:
        return self.root / "secantusd.toml"


def resolve_data_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """``data_dir``, else $QUERYLEAF_DATA_DIR, else the platform's user data dir; absolute."""
    chosen = data_dir or os.environ.get(DATA_DIR_ENV) or platformdirs.user_data_dir("queryleaf")
    return Path(chosen).expanduser().resolve()


def prepare(data_dir: str | os.PathLike[str] | None) -> DataDir:
    """The data directory, created (0700) if needed and made private if it was not."""
    dirs = DataDir(resolve_data_dir(data_dir))
    try:
        dirs.root.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
        dirs.users.mkdir(mode=PRIVATE_DIR, exist_ok=True)
        for path in (dirs.root, dirs.users):
            _make_private(path)
    except OSError as exc:
        raise EngineError(
            f"cannot create the data directory {dirs.root} ({exc.strerror}); "
            f"choose another with --data-dir or {DATA_DIR_ENV}"
        ) from exc
    return dirs


def make_everything_private(dirs: DataDir) -> None:
    """Take group and other permissions away from what a data directory from before
    queryleaf made it private holds: its files, ``users/`` and the whole storage tree."""
    for path in [*dirs.root.iterdir(), *_tree(dirs.users), *_tree(dirs.storage)]:
        _make_private(path)


def _tree(top: Path) -> Iterator[Path]:
    for parent, subdirs, files in os.walk(top):
        for name in (*subdirs, *files):
            yield Path(parent, name)


def _make_private(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        mode = path.lstat().st_mode
        if stat.S_ISLNK(mode) or not mode & 0o077:
            return
        os.chmod(path, PRIVATE_DIR if stat.S_ISDIR(mode) else stat.S_IMODE(mode) & 0o700)


def open_private(path: Path, flags: int) -> int:
    """``os.open`` a file that is created 0600 if it does not exist."""
    return os.open(path, flags | os.O_CREAT, PRIVATE_FILE)


def append_private(path: Path) -> IO[bytes]:
    """A 0600 file opened for appending (binary)."""
    return os.fdopen(open_private(path, os.O_WRONLY | os.O_APPEND), "ab")


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Replace ``path`` atomically with a 0600 file holding ``data``."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    with os.fdopen(open_private(tmp, os.O_WRONLY | os.O_EXCL), "w") as f:
        f.write(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def read_json(path: Path) -> dict[str, Any] | None:
    """The object in ``path``; None if it is missing or not a JSON object."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


@contextlib.contextmanager
def locked(dirs: DataDir, timeout: float = LOCK_TIMEOUT) -> Iterator[None]:
    """Exclusive flock on the directory's lock file (released by the OS if we die)."""
    if fcntl is None:
        raise EngineError(
            "the embedded server needs Linux or macOS here; pass --uri / set QUERYLEAF_URI"
        )
    with os.fdopen(open_private(dirs.lock, os.O_RDWR), "r+b") as handle:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise EngineError(
                        f"another process has held {dirs.lock} for {timeout:.0f}s while "
                        "starting or stopping the server; retry, or stop that process"
                    ) from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
