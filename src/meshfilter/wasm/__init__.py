"""meshfilter.wasm: proxy-wasm modules generated from Python (WAT + wasmtime)."""

from meshfilter.wasm.codegen import ModuleBuilder, assemble
from meshfilter.wasm.propagate import build_propagate_header

__all__ = ["ModuleBuilder", "assemble", "build_propagate_header"]
