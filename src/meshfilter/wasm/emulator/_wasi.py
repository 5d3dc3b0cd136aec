"""Host functions: WASI (``wasi_snapshot_preview1`` and ``wasi_unstable``), as cpp-host's exports.cc
answers them: stdout and stderr go to the log (info, error), the environment is the plugin's, clocks
and random work, and files and sockets answer what cpp-host answers (mostly ENOTSUP, ENOSYS or BADF).
Measured on Envoy 1.40 with every function (envoy-tests/test_wasm_wasi_envoy.py)."""

from __future__ import annotations

import os
import struct
import time
from collections.abc import Callable
from typing import Any

from meshfilter.wasm.emulator._state import Fault, GuestMemory, HostState

SUCCESS, BADF, FAULT, INVAL, NOENT, NOSYS, NOTDIR, NOTSUP = 0, 8, 21, 28, 44, 52, 20, 58
_RANDOM_MAX = 64 * 1024  # PROXY_WASM_HOST_WASI_RANDOM_GET_MAX_SIZE_BYTES
_STD = (1, 2)


def _std_only(fd: int, *_: int) -> int:
    return SUCCESS if fd in _STD else BADF


class Wasi:
    def __init__(self, state: HostState, mem: GuestMemory) -> None:
        self.state = state
        self.mem = mem

    def functions(self) -> dict[str, Callable[..., Any]]:
        def const(value: int) -> Callable[..., int]:
            return lambda *_: value

        return {
            "fd_write": self.fd_write, "fd_pwrite": self.fd_pwrite, "fd_read": const(NOSYS),
            "fd_seek": self.fd_seek, "fd_close": self.fd_close, "fd_fdstat_get": self.fd_fdstat_get,
            "fd_fdstat_set_flags": const(NOSYS), "fd_fdstat_set_rights": _std_only,
            "environ_get": self.environ_get, "environ_sizes_get": self.environ_sizes_get,
            "args_get": const(SUCCESS), "args_sizes_get": self.args_sizes_get,
            "clock_time_get": self.clock_time_get, "clock_res_get": self.clock_res_get,
            "fd_advise": const(SUCCESS), "fd_allocate": _std_only, "fd_datasync": _std_only,
            "fd_filestat_set_size": _std_only, "fd_filestat_set_times": _std_only, "fd_pread": const(NOSYS),
            "fd_readdir": self.fd_readdir, "fd_renumber": self.fd_renumber, "fd_sync": _std_only,
            "fd_tell": self.fd_tell, "path_create_directory": const(NOTSUP),
            "path_filestat_set_times": const(NOTSUP), "path_link": const(NOTSUP),
            "path_readlink": self.path_readlink, "path_remove_directory": const(NOTSUP),
            "path_rename": const(NOTSUP), "path_symlink": const(NOTSUP), "path_unlink_file": const(NOTSUP),
            "sock_accept": self.sock_accept, "sock_recv": self.sock_recv, "sock_send": self.sock_send,
            "sock_shutdown": const(NOTSUP), "random_get": self.random_get, "sched_yield": const(SUCCESS),
            "poll_oneoff": self.poll_oneoff, "proc_exit": self.proc_exit, "path_open": const(NOENT),
            "fd_prestat_get": const(BADF), "fd_prestat_dir_name": const(NOSYS),
            "path_filestat_get": const(NOTSUP), "fd_filestat_get": const(BADF),
        }

    def _writev(self, fd: int, iovs: int, count: int) -> tuple[int, int]:
        if fd not in _STD:
            return BADF, 0
        chunks = []
        try:
            for i in range(count):
                ptr, size = struct.unpack("<II", self.mem.read(iovs + 8 * i, 8))
                if size:
                    chunks.append(self.mem.read(ptr, size))
        except Fault:
            return FAULT, 0
        data = b"".join(chunks)
        if data:
            text = data.decode("utf-8", "replace")
            self.state.log(2 if fd == 1 else 4, text[:-1] if text.endswith("\n") else text)
        return SUCCESS, len(data)

    def fd_write(self, fd: int, iovs: int, count: int, nwritten: int) -> int:
        err, n = self._writev(fd, iovs, count)
        if err:
            return err
        self.mem.write_u32(nwritten, n)
        return SUCCESS

    def fd_pwrite(self, fd: int, iovs: int, count: int, offset: int, nwritten: int) -> int:
        return self.fd_write(fd, iovs, count, nwritten)

    def fd_seek(self, *_: int) -> int:
        self.state.host_messages.append("wasi_unstable fd_seek")
        return SUCCESS

    def fd_close(self, *_: int) -> int:
        self.state.host_messages.append("wasi_unstable fd_close")
        return SUCCESS

    def fd_fdstat_get(self, fd: int, ret: int) -> int:
        if fd not in _STD:
            return BADF
        self.mem.write(ret, struct.pack("<QQQ", 0, 64, 0))  # fs_rights_base = FD_WRITE
        return SUCCESS

    def _environ(self) -> list[bytes]:
        return [f"{k}={v}".encode() + b"\0" for k, v in self.state.environ.items()]

    def environ_sizes_get(self, count_ptr: int, size_ptr: int) -> int:
        items = self._environ()
        self.mem.write_u32(count_ptr, len(items))
        self.mem.write_u32(size_ptr, sum(len(x) for x in items))
        return SUCCESS

    def environ_get(self, array_ptr: int, buf_ptr: int) -> int:
        for item in self._environ():
            self.mem.write_u32(array_ptr, buf_ptr)
            self.mem.write(buf_ptr, item)
            buf_ptr += len(item)
            array_ptr += 4
        return SUCCESS

    def args_sizes_get(self, argc_ptr: int, size_ptr: int) -> int:
        self.mem.write_u32(argc_ptr, 0)
        self.mem.write_u32(size_ptr, 0)
        return SUCCESS

    def clock_time_get(self, clock_id: int, precision: int, ret: int) -> int:
        if clock_id == 0:
            now = self.state.now_ns()
        elif clock_id == 1:
            now = time.monotonic_ns() + self.state.time_offset_ns
        else:
            return NOTSUP
        self.mem.write_u64(ret, now)
        return SUCCESS

    def clock_res_get(self, clock_id: int, ret: int) -> int:
        if clock_id > 1:
            return NOTSUP
        self.mem.write_u64(ret, 1)
        return SUCCESS

    def fd_readdir(self, fd: int, buf: int, buf_len: int, cookie: int, nread: int) -> int:
        self.mem.write_u32(nread, 0)
        return NOTDIR

    def fd_renumber(self, fd: int, to: int) -> int:
        return NOTSUP if fd in _STD and to in _STD else BADF

    def fd_tell(self, fd: int, ret: int) -> int:
        if fd not in _STD:
            return BADF
        self.mem.write_u64(ret, 0)
        return SUCCESS

    def path_readlink(self, fd: int, pp: int, pl: int, bp: int, bl: int, ret: int) -> int:
        self.mem.write_u32(ret, 0)
        return NOTSUP

    def sock_accept(self, fd: int, flags: int, ret: int) -> int:
        self.mem.write_u64(ret, 0)
        return NOTSUP

    def sock_recv(self, fd: int, dp: int, dl: int, flags: int, ret0: int, ret1: int) -> int:
        self.mem.write_u32(ret0, 0)
        self.mem.write(ret1, b"\0\0")
        return NOTSUP

    def sock_send(self, fd: int, dp: int, dl: int, flags: int, ret: int) -> int:
        self.mem.write_u32(ret, 0)
        return NOTSUP

    def random_get(self, ptr: int, size: int) -> int:
        if size > _RANDOM_MAX:
            return INVAL
        if size:
            self.mem.write(ptr, os.urandom(size))
        return SUCCESS

    def poll_oneoff(self, inp: int, out: int, n: int, nevents: int) -> int:
        self.mem.write_u32(nevents, 0)
        return SUCCESS

    def proc_exit(self, code: int) -> None:
        # cpp-host logs it and returns: the module goes on (and usually traps right after)
        self.state.host_messages.append("wasi_unstable proc_exit")
