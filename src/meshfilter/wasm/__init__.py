"""meshfilter.wasm: proxy-wasm modules generated from Python (WAT + wasmtime)."""

from meshfilter.wasm.codegen import ModuleBuilder, assemble
from meshfilter.wasm.emulator import HostEmulator
from meshfilter.wasm.propagate import build_propagate_header
from meshfilter.wasm.tag_rules import build_tag_rules

__all__ = ["HostEmulator", "ModuleBuilder", "assemble", "build_propagate_header", "build_tag_rules"]
