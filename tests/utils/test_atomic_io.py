"""omnifuse.utils.io: a writer killed at any point (SIGKILL, so no cleanup runs) leaves the old
artifact or the new one, complete: never neither, never a mix of the two."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from omnifuse.utils.io import AtomicFile, atomic_dir, atomic_write, is_temp, recover_dir, remove_stale_temps

FILES = ("a.bin", "b.bin", "c.bin")
SIZE = 1 << 20  # 1 MiB per file: large enough that a kill often lands mid-write

WRITER = textwrap.dedent(
    """
    import os, pathlib, signal, sys
    from omnifuse.utils.io import atomic_dir, atomic_write

    target, mode, kill_at, size = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
    files = ("a.bin", "b.bin", "c.bin")

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    if kill_at != "random":  # kill at a chosen point of writing version 1
        real_rename, real_replace = pathlib.Path.rename, os.replace

        def rename(self, new):
            if kill_at == "before-aside":
                die()
            out = real_rename(self, new)
            if kill_at == "between-renames" or (kill_at == "after-rename-in" and str(new) == str(target)):
                die()
            return out

        def replace(src, dst):
            if kill_at == "before-replace":
                die()
            return real_replace(src, dst)

        pathlib.Path.rename, os.replace = rename, replace

    version = 0
    while True:
        version += 1
        if mode == "dir":
            def write(tmp, v=version):
                for i, name in enumerate(files):
                    if kill_at == "mid-write" and i == 1:
                        die()
                    (tmp / name).write_bytes(bytes([v % 256]) * size)
                (tmp / "manifest.json").write_text('{"version": %d}' % v)
            atomic_dir(target, write)
        else:
            atomic_write(target, bytes([version % 256]) * size)
        print(version, flush=True)
    """
)


def _check_dir(path: Path) -> int:
    """The version of a complete directory artifact; fails on a missing, partial or mixed one."""
    found = recover_dir(path)
    assert found == path and path.is_dir(), f"no artifact at {path}: {sorted(os.listdir(path.parent))}"
    version = json.loads((path / "manifest.json").read_text())["version"]
    for name in FILES:
        data = (path / name).read_bytes()
        assert len(data) == SIZE, f"{name}: {len(data)} bytes (partial)"
        assert data.count(bytes([version % 256])) == SIZE, f"{name} is not from version {version} (a mix)"
    leftovers = [p.name for p in path.parent.iterdir() if is_temp(p)]
    assert not leftovers, leftovers  # recovery removed the dead writer's temporaries
    return version


def _check_file(path: Path) -> int:
    data = path.read_bytes()
    assert len(data) == SIZE, f"{len(data)} bytes (partial)"
    version = data[0]
    assert data.count(bytes([version])) == SIZE, "a mix of two versions"
    return version


def _run_writer(tmp_path: Path, target: Path, mode: str, kill_at: str, delay_s: float) -> list[int]:
    """Start the writer, let it run (or die at its kill point), SIGKILL it; the versions it committed."""
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen(
        [sys.executable, str(script), str(target), mode, kill_at, str(SIZE)], stdout=subprocess.PIPE, env=env
    )
    try:
        if kill_at == "random":
            time.sleep(delay_s)
            proc.send_signal(signal.SIGKILL)
        proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    out = proc.stdout.read().decode()
    proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, out)
    return [int(v) for v in out.split()]


def _seed_dir(target: Path) -> None:
    def write(tmp: Path) -> None:
        for name in FILES:
            (tmp / name).write_bytes(b"\x00" * SIZE)
        (tmp / "manifest.json").write_text('{"version": 0}')

    atomic_dir(target, write)


@pytest.mark.parametrize(
    "kill_at", ["mid-write", "before-aside", "between-renames", "after-rename-in", "random", "random"]
)
def test_killed_directory_writer_leaves_old_or_new_never_neither_nor_a_mix(tmp_path, kill_at):
    target = tmp_path / "out" / "artifact"
    _seed_dir(target)
    delay = 0.3 + 0.4 * (hash(str(tmp_path)) % 7) / 7  # random kills land at varied points
    committed = _run_writer(tmp_path, target, "dir", kill_at, delay)
    version = _check_dir(target)
    last = committed[-1] if committed else 0
    assert version in (last, last + 1), (version, committed)
    if kill_at in ("mid-write", "before-aside", "between-renames"):
        assert version == 0  # the new one never got in: the old one is back, complete
    if kill_at == "after-rename-in":
        assert version == 1


@pytest.mark.parametrize("kill_at", ["before-replace", "random", "random"])
def test_killed_file_writer_leaves_old_or_new_file(tmp_path, kill_at):
    target = tmp_path / "artifact.bin"
    atomic_write(target, b"\x00" * SIZE)
    committed = _run_writer(tmp_path, target, "file", kill_at, 0.4)
    version = _check_file(target)
    last = committed[-1] % 256 if committed else 0
    assert version in (last, (last + 1) % 256), (version, committed)
    remove_stale_temps(tmp_path)
    assert not [p.name for p in tmp_path.iterdir() if is_temp(p)]


def test_atomic_dir_replaces_and_refuses_an_unrelated_directory(tmp_path):
    out = tmp_path / "model"
    atomic_dir(out, lambda d: (d / "config.json").write_text("1"), marker="config.json")
    atomic_dir(out, lambda d: (d / "config.json").write_text("2"), marker="config.json")
    assert (out / "config.json").read_text() == "2" and sorted(os.listdir(tmp_path)) == ["model"]
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "keep.txt").write_text("mine")
    with pytest.raises(ValueError, match="holds no config.json"):
        atomic_dir(tmp_path / "data", lambda d: None, marker="config.json")
    assert (tmp_path / "data" / "keep.txt").read_text() == "mine"


def test_a_failing_writer_leaves_the_old_directory_and_no_temporary(tmp_path):
    out = tmp_path / "model"
    atomic_dir(out, lambda d: (d / "x").write_text("old"))

    def fail(d: Path) -> None:
        (d / "x").write_text("half")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        atomic_dir(out, fail)
    assert (out / "x").read_text() == "old" and sorted(os.listdir(tmp_path)) == ["model"]
    with pytest.raises(RuntimeError), AtomicFile(tmp_path / "f.txt", "w") as f:
        f.write("half")
        raise RuntimeError("boom")
    assert sorted(os.listdir(tmp_path)) == ["model"]


def test_recover_dir_puts_a_set_aside_copy_back(tmp_path):
    """The state a crash between the two renames leaves: no `model`, a complete `.model.old-PID`
    of a dead writer and its complete new temporary; loaders find the old copy in place."""
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True)
    pid = int(dead.stdout)
    (tmp_path / f".model.old-{pid}").mkdir()
    (tmp_path / f".model.old-{pid}" / "config.json").write_text("old")
    (tmp_path / f".model.tmp-{pid}").mkdir()
    assert recover_dir(tmp_path / "model") == tmp_path / "model"
    assert (tmp_path / "model" / "config.json").read_text() == "old"
    assert sorted(os.listdir(tmp_path)) == ["model"]
