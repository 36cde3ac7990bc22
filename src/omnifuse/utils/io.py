"""Atomic writes: a reader, or a process restarted after a crash, finds the old version or the
new one, complete, never neither and never a mix of the two.

- `atomic_write(path, data)`: a file. The data goes to a temporary name in the same directory,
  is flushed and fsynced, renamed over `path` (`os.replace`, atomic on POSIX), and the
  directory is fsynced so the rename itself survives a power cut. `AtomicFile` is the same for
  writers that stream (shards).
- `atomic_dir(path, write)`: a directory. `write(tmp)` fills a temporary directory next to
  `path`; every file and the directory are fsynced; then an existing `path` is renamed aside
  (`.<name>.old-<pid>`), the new one renamed in, the parent fsynced, and the old one deleted.
  Replacing a directory takes two renames, so a crash between them leaves no `path` but a
  complete `.old-` copy next to it: `recover_dir(path)` (called by every loader) puts it back.

Temporary names start with a dot and hold the writer's pid (`.<name>.tmp-<pid>`), so listings
of complete items skip them and `recover_dir` / `remove_stale_temps` can delete those whose
writer is gone.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

_TEMP = re.compile(r"^\.(?P<name>.+)\.(?P<kind>tmp|old)-(?P<pid>\d+)$")


def temp_name(path: Path, kind: str = "tmp") -> Path:
    """`dir/.name.tmp-<pid>`: a hidden sibling of `path` for this process."""
    return path.parent / f".{path.name}.{kind}-{os.getpid()}"


def is_temp(path: Path) -> bool:
    """Whether `path` is a temporary or set-aside name written by this module."""
    return _TEMP.match(path.name) is not None


def fsync_file(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def fsync_dir(path: Path) -> None:
    """Make a directory's entries (creations, renames) durable."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some filesystems refuse fsync on a directory
        pass
    finally:
        os.close(fd)


def fsync_tree(path: Path) -> None:
    """fsync every file under `path`, then every directory, deepest first."""
    dirs = [path]
    for p in sorted(path.rglob("*")):
        if p.is_symlink():
            continue
        if p.is_file():
            fsync_file(p)
        elif p.is_dir():
            dirs.append(p)
    for d in sorted(dirs, key=lambda d: len(d.parts), reverse=True):
        fsync_dir(d)


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


class AtomicFile:
    """A file written under a temporary name; `commit()` fsyncs and renames it over `path`,
    `abort()` deletes it. As a context manager: commit on success, abort on an exception."""

    def __init__(self, path: str | os.PathLike, mode: str = "wb", encoding: str | None = None):
        if "w" not in mode:
            raise ValueError(f"AtomicFile writes a new file; mode must contain 'w', got {mode!r}")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = temp_name(self.path)
        if "b" not in mode and encoding is None:
            encoding = "utf-8"
        self.file: IO[Any] = open(self.tmp, mode, encoding=encoding)

    def write(self, data) -> int:
        return self.file.write(data)

    def commit(self) -> Path:
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()
        os.replace(self.tmp, self.path)
        fsync_dir(self.path.parent)
        return self.path

    def abort(self) -> None:
        self.file.close()
        with contextlib.suppress(FileNotFoundError):
            self.tmp.unlink()

    def __enter__(self) -> AtomicFile:
        return self

    def __exit__(self, kind, value, tb) -> None:
        if kind is None:
            self.commit()
        else:
            self.abort()


def atomic_write(path: str | os.PathLike, data: str | bytes | Callable[[Path], Any]) -> Path:
    """Write a file atomically. `data`: text (UTF-8), bytes, or `write(tmp_path)` for libraries
    that write to a path themselves (safetensors, FAISS, ONNX)."""
    path = Path(path)
    if callable(data):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = temp_name(path)
        try:
            data(tmp)
            fsync_file(tmp)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            raise
        fsync_dir(path.parent)
        return path
    with AtomicFile(path, "w" if isinstance(data, str) else "wb") as f:
        f.write(data)
    return path


def atomic_dir(path: str | os.PathLike, write: Callable[[Path], Any], marker: str | None = None) -> Path:
    """Build a directory atomically: `write(tmp_dir)` fills a fresh temporary directory, which
    then replaces `path` (old copy renamed aside first, deleted last). Returns `path`.

    `marker`: a file that every directory of this kind holds (e.g. `config.json`); an existing
    non-empty `path` without it is refused (ValueError) rather than replaced, so a mistyped
    output path never deletes unrelated files.
    """
    final = Path(path).absolute()
    final.parent.mkdir(parents=True, exist_ok=True)
    final = recover_dir(final)  # an earlier crash may have left the old copy aside
    if marker and final.is_dir() and any(final.iterdir()) and not (final / marker).exists():
        raise ValueError(f"{path} exists and holds no {marker}; write into a new or empty directory")
    if final.exists() and not final.is_dir():
        raise ValueError(f"{path} is a file; expected a directory")
    tmp = temp_name(final)
    _remove(tmp)
    tmp.mkdir()
    try:
        write(tmp)
        fsync_tree(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = temp_name(final, "old")
    if final.exists():
        _remove(old)
        final.rename(old)
    tmp.rename(final)
    fsync_dir(final.parent)
    _remove(old)
    return Path(path)


def recover_dir(path: str | os.PathLike) -> Path:
    """The directory to read for `path`, after a crash or during another process's replace.

    If `path` is missing but a copy was set aside (`.name.old-<pid>`, complete by construction),
    it is put back when its writer is gone (or returned as is while the writer still runs, or on
    a read-only filesystem). Temporaries of dead writers, never renamed in, are deleted.
    """
    final = Path(path)
    parent = final.parent
    if not parent.is_dir():
        return final
    dead_aside: list[Path] = []
    live_aside: list[Path] = []
    for p in parent.glob(f".{glob_escape(final.name)}.*-*"):
        m = _TEMP.match(p.name)
        if not m or m["name"] != final.name:
            continue
        pid = int(m["pid"])
        writer_gone = pid == os.getpid() or not _pid_alive(pid)
        if m["kind"] == "old":
            (dead_aside if writer_gone else live_aside).append(p)
        elif writer_gone:
            _remove_quietly(p)  # a temporary that was never renamed in: incomplete
    if not final.exists() and dead_aside:
        newest = max(dead_aside, key=lambda p: p.stat().st_mtime)
        dead_aside.remove(newest)
        try:
            newest.rename(final)
            fsync_dir(parent)
        except OSError:
            return newest
    if not final.exists() and live_aside:
        return max(live_aside, key=lambda p: p.stat().st_mtime)
    for p in dead_aside:
        _remove_quietly(p)
    return final


def remove_stale_temps(directory: str | os.PathLike) -> None:
    """Delete temporaries of dead writers in `directory` and put set-aside copies back."""
    directory = Path(directory)
    if not directory.is_dir():
        return
    names = {m["name"] for p in directory.iterdir() if (m := _TEMP.match(p.name))}
    for name in sorted(names):
        recover_dir(directory / name)


def _remove_quietly(path: Path) -> None:
    with contextlib.suppress(OSError):
        _remove(path)


def glob_escape(name: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", name)
