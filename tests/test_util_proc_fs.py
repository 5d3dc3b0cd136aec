"""meshfilter.util: the one /proc reader, children that die with their parent (even on SIGKILL, even
when forked for a thread that has ended), temp directories that do not pile up, the file watcher."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from meshfilter.util.digest import read_with_digest, sha256_digest
from meshfilter.util.fs import OWNER_FILE, OwnedTempDir, WriteBehind, atomic_writer, owner_is_gone, reap_orphan_tempdirs
from meshfilter.util.proc import children_of, pid_alive, pid_start_time, proc_stat, spawn, stop_process
from meshfilter.util.watch import FileWatcher


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def _wait_gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    return False


# ------------------------------------------------------------------------------ /proc

def test_proc_stat_of_this_process() -> None:
    st = proc_stat(os.getpid())
    assert st is not None and st.pid == os.getpid() and st.ppid == os.getppid() and st.running
    assert st.comm.startswith("python") or st.comm  # the executable's name, parentheses stripped
    assert pid_start_time(os.getpid()) == str(st.start_time)
    assert pid_alive(os.getpid(), str(st.start_time))
    assert not pid_alive(os.getpid(), str(st.start_time + 1))  # a reused PID is not the same process
    assert proc_stat(_dead_pid()) is None


def test_a_zombie_is_not_alive() -> None:
    proc = subprocess.Popen(["true"])
    deadline = time.monotonic() + 10
    while (st := proc_stat(proc.pid)) is not None and st.state != "Z" and time.monotonic() < deadline:
        time.sleep(0.02)
    assert st is not None and st.state == "Z"
    assert not pid_alive(proc.pid)
    proc.wait()


# ------------------------------------------------------------------------------ spawn

_PARENT = textwrap.dedent("""
    import sys, threading, time
    from meshfilter.util.proc import spawn
    pids = []
    def start():  # from a short-lived thread, the way the demo starts its sidecars
        pids.append(spawn(["sleep", "300"]).pid)
    t = threading.Thread(target=start)
    t.start()
    t.join()
    pids.append(spawn(["sleep", "300"]).pid)  # and from the main thread
    print(" ".join(map(str, pids)), flush=True)
    time.sleep(300)
""")


def test_spawned_children_die_with_their_parent_even_on_sigkill() -> None:
    parent = subprocess.Popen([sys.executable, "-c", _PARENT], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        pids = [int(p) for p in parent.stdout.readline().split()]
        assert len(pids) == 2
        time.sleep(0.3)
        assert all(pid_alive(p) for p in pids)  # the thread that asked for one has ended: still alive
        assert sorted(children_of(parent.pid)) == sorted(pids)
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
        assert all(_wait_gone(p) for p in pids), [p for p in pids if pid_alive(p)]
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


def test_spawn_from_a_worker_thread_returns_a_usable_popen() -> None:
    out: list[subprocess.Popen[bytes]] = []
    t = threading.Thread(target=lambda: out.append(spawn(["sleep", "30"])))
    t.start()
    t.join()
    (proc,) = out
    assert proc.poll() is None
    stop_process(proc, timeout=5)
    assert proc.returncode == -signal.SIGTERM
    with pytest.raises(TypeError):
        spawn(["true"], preexec_fn=lambda: None)


# ------------------------------------------------------------------------------ temp dirs

def test_owned_tempdir_records_its_owner_and_cleans_up(tmp_path: Path) -> None:
    d = OwnedTempDir(prefix="unit-", dir=str(tmp_path))
    assert d.path.name.startswith("meshfilter-unit-")
    pid, start = (d.path / OWNER_FILE).read_text().split()
    assert int(pid) == os.getpid() and start == pid_start_time(os.getpid())
    assert not owner_is_gone(d.path)
    d.cleanup()
    assert not d.path.exists()


def test_orphan_tempdirs_are_reaped_live_and_foreign_ones_kept(tmp_path: Path) -> None:
    orphan = tmp_path / "meshfilter-demo-ab-orphan"
    orphan.mkdir()
    (orphan / OWNER_FILE).write_text(f"{_dead_pid()} 123\n")
    (orphan / "envoy.log").write_text("x")
    reused = tmp_path / "meshfilter-run-reused-pid"  # our PID, another start time: a dead owner
    reused.mkdir()
    (reused / OWNER_FILE).write_text(f"{os.getpid()} 1\n")
    live = OwnedTempDir(prefix="live-", dir=str(tmp_path))
    foreign = tmp_path / "meshfilter-no-owner-file"  # not ours to judge
    foreign.mkdir()
    other = tmp_path / "someone-else"
    other.mkdir()
    (other / OWNER_FILE).write_text(f"{_dead_pid()} 1\n")
    removed = reap_orphan_tempdirs(str(tmp_path), force=True)
    assert sorted(removed) == sorted([orphan, reused])
    assert not orphan.exists() and not reused.exists()
    assert live.path.exists() and foreign.exists() and other.exists()
    live.cleanup()


# ------------------------------------------------------------------------------ watcher

def test_file_watcher_reports_changes_once_they_settle(tmp_path: Path) -> None:
    a, b = tmp_path / "a.lua", tmp_path / "b.json"
    a.write_text("1")
    b.write_text("{}")
    w = FileWatcher(lambda: [a, b], interval=0.02, settle=0.1)
    assert w.wait_for_change(timeout=0.1) == []
    b.write_text("{}")  # same size, maybe the same mtime tick: the content decides
    b.write_text("{1}")
    assert w.wait_for_change(timeout=2) == [b]
    assert w.wait_for_change(timeout=0.1) == []
    a.unlink()
    assert w.wait_for_change(timeout=2) == [a]
    a.write_text("2")  # back again
    assert w.wait_for_change(timeout=2) == [a]


def test_file_watcher_sees_new_files_under_a_folder(tmp_path: Path) -> None:
    (tmp_path / "lib").mkdir()
    w = FileWatcher(lambda: sorted(tmp_path.rglob("*.lua")), interval=0.02, settle=0.05)
    new = tmp_path / "lib" / "m.lua"
    new.write_text("return {}")
    assert w.wait_for_change(timeout=2) == [new]


def test_owned_tempdirs_lists_a_processes_dirs(tmp_path: Path) -> None:
    from meshfilter.util.fs import owned_tempdirs

    mine = OwnedTempDir(prefix="mine-", dir=str(tmp_path))
    other = tmp_path / "meshfilter-other"
    other.mkdir()
    (other / OWNER_FILE).write_text("1 1\n")
    assert owned_tempdirs(os.getpid(), str(tmp_path)) == [mine.path]
    mine.cleanup()


# -- reading with a digest, streamed atomic output -----------------------------------------------------------

@pytest.mark.parametrize("size", [0, 1, 4095, 4096, 4097, 3 * 4096 + 5])
def test_read_with_digest_is_the_bytes_and_their_sha256(tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    (tmp_path / "m").write_bytes(data)
    got, digest = read_with_digest(tmp_path / "m", block=4096)
    assert bytes(got) == data and digest == sha256_digest(data)


def test_read_with_digest_of_a_missing_file_raises_oserror(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_with_digest(tmp_path / "nope")


def test_atomic_writer_with_write_behind_writes_all_and_restart_empties(tmp_path: Path) -> None:
    chunks = [os.urandom(3000) for _ in range(10)]
    with atomic_writer(tmp_path / "out.bin") as fh:
        out = WriteBehind(fh, step=4096)
        out.write(b"dropped by the restart")
        out.restart()
        for c in chunks:
            out.write(c)
        assert out.flushed > 0 and out.written == 30000
    assert (tmp_path / "out.bin").read_bytes() == b"".join(chunks)
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_atomic_writer_leaves_nothing_when_the_block_raises(tmp_path: Path) -> None:
    (tmp_path / "out.bin").write_bytes(b"old")
    with pytest.raises(KeyboardInterrupt), atomic_writer(tmp_path / "out.bin") as fh:
        fh.write(b"half")
        raise KeyboardInterrupt
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"] and (tmp_path / "out.bin").read_bytes() == b"old"
