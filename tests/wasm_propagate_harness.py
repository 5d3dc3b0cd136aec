"""A tiny direct proxy-wasm host on wasmtime for the propagate-header unit tests.

Implements just the host calls the module imports, so the module's own behaviour (verdicts, logs,
memory) is tested independently of meshfilter's emulator.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import wasmtime


@dataclass
class Host:
    module_bytes: bytes
    config: bytes = b""
    root_id: str | None = "propaganda_filter_root"
    logs: list[tuple[int, str]] = field(default_factory=list)
    headers: list[tuple[str, str]] = field(default_factory=list)
    foreign_calls: list[str] = field(default_factory=list)
    route_cache_clears: int = 0

    def __post_init__(self) -> None:
        engine = wasmtime.Engine()
        self.store = wasmtime.Store(engine)
        module = wasmtime.Module(engine, self.module_bytes)
        linker = wasmtime.Linker(engine)
        i32 = wasmtime.ValType.i32()

        def define(name: str, n: int, fn: object) -> None:
            linker.define_func("env", name, wasmtime.FuncType([i32] * n, [i32]), fn, access_caller=True)

        define("proxy_log", 3, self._log)
        define("proxy_get_buffer_bytes", 5, self._get_buffer_bytes)
        define("proxy_get_configuration", 2, self._get_configuration)
        define("proxy_replace_header_map_value", 5, self._replace)
        define("proxy_call_foreign_function", 6, self._foreign)
        define("proxy_clear_route_cache", 0, self._clear)
        define("proxy_get_property", 4, self._get_property)
        names = {imp.name for imp in module.imports}
        self.instance = linker.instantiate(self.store, module)
        self.imports = names
        self.exports = {e.name for e in module.exports}
        ex = self.instance.exports(self.store)
        self.memory = ex["memory"]
        self.malloc = ex["proxy_on_memory_allocate"] if "proxy_on_memory_allocate" in self.exports else ex["malloc"]
        self._ex = ex
        self.abi01 = "proxy_abi_version_0_1_0" in self.exports

    # -- memory helpers
    def _read(self, caller: wasmtime.Caller, ptr: int, n: int) -> bytes:
        mem = caller["memory"]
        assert isinstance(mem, wasmtime.Memory)
        return bytes(mem.read(caller, ptr, ptr + n))

    def _give(self, caller: wasmtime.Caller, data: bytes, ptr_ptr: int, size_ptr: int) -> int:
        mem = caller["memory"]
        assert isinstance(mem, wasmtime.Memory)
        malloc = caller["proxy_on_memory_allocate" if not self.abi01 else "malloc"]
        assert isinstance(malloc, wasmtime.Func)
        addr = malloc(caller, len(data)) if data else 0
        if data and not addr:
            return 1
        if data:
            mem.write(caller, data, addr)
        mem.write(caller, int(addr).to_bytes(4, "little"), ptr_ptr)
        mem.write(caller, len(data).to_bytes(4, "little"), size_ptr)
        return 0

    # -- host calls
    def _log(self, caller: wasmtime.Caller, level: int, ptr: int, n: int) -> int:
        self.logs.append((level, self._read(caller, ptr, n).decode("utf-8", "replace")))
        return 0

    def _get_buffer_bytes(self, caller: wasmtime.Caller, typ: int, start: int, n: int, pp: int, sp: int) -> int:
        assert typ == 7
        return self._give(caller, self.config[start:start + n], pp, sp)

    def _get_configuration(self, caller: wasmtime.Caller, pp: int, sp: int) -> int:
        return self._give(caller, self.config, pp, sp)

    def _get_property(self, caller: wasmtime.Caller, path: int, n: int, pp: int, sp: int) -> int:
        if self._read(caller, path, n) != b"plugin_root_id" or self.root_id is None:
            return 1  # NotFound
        return self._give(caller, self.root_id.encode(), pp, sp)

    def _replace(self, caller: wasmtime.Caller, typ: int, kp: int, kn: int, vp: int, vn: int) -> int:
        assert typ == 0
        key = self._read(caller, kp, kn).decode().lower()
        value = self._read(caller, vp, vn).decode()
        self.headers = [(k, v) for k, v in self.headers if k != key] + [(key, value)]
        return 0

    def _foreign(self, caller: wasmtime.Caller, np: int, nn: int, ap: int, an: int, rp: int, rs: int) -> int:
        self.foreign_calls.append(self._read(caller, np, nn).decode())
        return 0

    def _clear(self, caller: wasmtime.Caller) -> int:
        self.route_cache_clears += 1
        return 0

    # -- driving the module
    def configure(self, config: bytes | None = None) -> bool:
        if config is not None:
            self.config = config
        return bool(self._ex["proxy_on_configure"](self.store, 1, len(self.config)))

    def request(self, headers: list[tuple[str, str]]) -> int:
        self.headers = list(headers)
        fn = self._ex["proxy_on_request_headers"]
        if self.abi01:
            return int(fn(self.store, 2, len(headers)))
        return int(fn(self.store, 2, len(headers), 1))

    def memory_size(self) -> int:
        return int(self.memory.data_len(self.store))
