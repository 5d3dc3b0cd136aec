"""Processes: the one /proc reader, children that die with their parent, ending a child by PID.

- :func:`proc_stat` parses ``/proc/PID/stat`` (state, parent, CPU ticks, start time), once for
  everyone: the runners' CPU time and liveness, the container owner labels, the temp-dir owner check.
- :func:`spawn` starts a child the kernel kills when this process dies, even by SIGKILL
  (``PR_SET_PDEATHSIG``). The kernel sends that signal when the *thread* that forked the child exits,
  so children are always forked by a thread that lives as long as the process: the main thread, or
  one long-lived spawner thread for calls from any other thread (a thread pool's worker, say).
- :func:`stop_process` ends a child: SIGTERM, wait, then SIGKILL.
"""

from __future__ import annotations

import ctypes
import os
import queue
import signal
import subprocess
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


@dataclass(frozen=True)
class ProcStat:
    """The fields of ``/proc/PID/stat`` meshfilter uses (see proc(5))."""

    pid: int
    comm: str  # the executable's name (up to 15 characters), e.g. "envoy"
    state: str  # R, S, D, Z (zombie), X (dead), ...
    ppid: int
    utime: int  # clock ticks
    stime: int
    start_time: int  # clock ticks since boot: tells a process from a later one reusing its PID

    @property
    def running(self) -> bool:
        return self.state not in ("Z", "X")


def proc_stat(pid: int) -> ProcStat | None:
    """``/proc/PID/stat`` of ``pid``, or None when there is no such process."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # "pid (comm) state ppid ..."; comm may hold spaces and parentheses: split after the last ')'
    head, _, tail = text.rpartition(")")
    fields = tail.split()
    try:
        return ProcStat(pid=pid, comm=head.partition("(")[2], state=fields[0], ppid=int(fields[1]),
                        utime=int(fields[11]), stime=int(fields[12]), start_time=int(fields[19]))
    except (IndexError, ValueError):
        return None


def proc_cpu_seconds(pid: int) -> float:
    """utime+stime of a process, in seconds (0.0 when it is gone)."""
    st = proc_stat(pid)
    return 0.0 if st is None else (st.utime + st.stime) / os.sysconf("SC_CLK_TCK")


def proc_rss_bytes(pid: int) -> int:
    """Resident set size of a process, from /proc/PID/status (0 when gone or not reported)."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return 0
    for line in lines:
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def pid_start_time(pid: int) -> str | None:
    """The start time of ``pid`` as text (for labels and owner files), or None when it is gone."""
    st = proc_stat(pid)
    return None if st is None else str(st.start_time)


def pid_alive(pid: int, start_time: str | None = None) -> bool:
    """Is ``pid`` a running (not zombie) process, and, if ``start_time`` is given, the same one?"""
    st = proc_stat(pid)
    if st is None or not st.running:
        return False
    return not start_time or str(st.start_time) == start_time


def children_of(pid: int) -> list[int]:
    """PIDs of the live processes whose parent is ``pid``."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            st = proc_stat(int(entry.name))
            if st is not None and st.ppid == pid and st.running:
                out.append(st.pid)
    return out


# ------------------------------------------------------------------------ children die with us

_libc: Any = None


def _prctl() -> Callable[..., int]:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    prctl: Callable[..., int] = _libc.prctl
    return prctl


def _die_with_parent(parent: int, prctl: Callable[..., int]) -> Callable[[], None]:
    def preexec() -> None:  # runs in the child between fork and exec
        prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the prctl took effect
            os._exit(1)

    return preexec


class _Spawner:
    """One daemon thread that forks children for callers on other threads (it lives as long as the
    process, so the kernel's parent-death signal fires only when the process dies)."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]]] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="meshfilter-spawner", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            job, fut = self._jobs.get()
            if fut.set_running_or_notify_cancel():
                try:
                    fut.set_result(job())
                except BaseException as exc:  # noqa: BLE001 - handed to the caller
                    fut.set_exception(exc)

    def call(self, job: Callable[[], Any]) -> Any:
        fut: Future[Any] = Future()
        self._jobs.put((job, fut))
        return fut.result()


_spawner: _Spawner | None = None
_spawner_lock = threading.Lock()


def spawn(cmd: Sequence[str], **popen_kwargs: Any) -> subprocess.Popen[Any]:
    """``subprocess.Popen(cmd, **popen_kwargs)`` whose child is killed (SIGKILL) when this process dies,
    however it dies. ``preexec_fn`` is taken by this; pass ``start_new_session`` etc. as usual."""
    global _spawner
    if "preexec_fn" in popen_kwargs:
        raise TypeError("spawn() sets preexec_fn itself")
    prctl = _prctl()  # resolved here: the child only calls it

    def job() -> subprocess.Popen[Any]:
        return subprocess.Popen(list(cmd), preexec_fn=_die_with_parent(os.getpid(), prctl),
                                **popen_kwargs)

    if threading.current_thread() is threading.main_thread():
        return job()
    with _spawner_lock:
        if _spawner is None:
            _spawner = _Spawner()
    result: subprocess.Popen[Any] = _spawner.call(job)
    return result


def stop_process(proc: subprocess.Popen[Any], timeout: float = 10.0) -> None:
    """SIGTERM ``proc``, wait up to ``timeout`` seconds, then SIGKILL and reap it. No-op if it has exited."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout)
