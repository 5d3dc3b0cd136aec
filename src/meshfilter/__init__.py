"""meshfilter: build, package, deploy and prove Envoy data-plane filters from Python.

The public API is re-exported here and loaded lazily (``import meshfilter`` stays cheap: the
Docker SDK, gRPC and wasmtime load only when a name that needs them is used). See
docs/architecture.md for the module map.

    import meshfilter
    wasm = meshfilter.build_propagate_header()                # bytes of a 2 KB proxy-wasm module
    emu = meshfilter.HostEmulator(wasm, root_id="propaganda_filter_root",
                                  plugin_config=b'{"head_tag_name":"route-v","head_tag_value":"hello2v2"}')
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

from meshfilter.errors import (  # noqa: E402
    AuthError,
    ConfigError,
    ContainerError,
    DemoError,
    DigestMismatchError,
    EnvoyError,
    EnvoyValidationError,
    HostCallError,
    K8sError,
    LuaError,
    MeshfilterError,
    NotFoundError,
    NotWasmArtifactError,
    RegistryError,
    TranscoderError,
    UsageError,
    WasmError,
)

# public name -> module that defines it
_LAZY: dict[str, str] = {
    # filters: reference semantics
    "PropagateConfig": "meshfilter.filters.propagate",
    "parse_propagate_config": "meshfilter.filters.propagate:parse_config",
    "RuleSet": "meshfilter.filters.tagging.model",
    "Rule": "meshfilter.filters.tagging.model",
    "Match": "meshfilter.filters.tagging.model",
    "load_rules": "meshfilter.filters.tagging.loader",
    "evaluate_rules": "meshfilter.filters.tagging.semantics:evaluate",
    "seed_ruleset": "meshfilter.filters.tagging.model",
    # wasm
    "build_propagate_header": "meshfilter.wasm.propagate",
    "build_tag_rules": "meshfilter.wasm.tag_rules",
    "HostEmulator": "meshfilter.wasm.emulator",
    "ModuleBuilder": "meshfilter.wasm.codegen",
    "assemble": "meshfilter.wasm.codegen",
    "build_python_filter": "meshfilter.wasm.python_filter",
    # lua
    "compile_rules_to_lua": "meshfilter.lua.codegen:compile_rules",
    "python_filter_to_lua": "meshfilter.lua.python_filter:build_python_filter",
    # sdk: filters written in Python
    "run_request": "meshfilter.sdk.reference",
    "check_filter": "meshfilter.sdk.checker:check_file",
    # envoy
    "start_envoy": "meshfilter.envoy.runner",
    "get_backend": "meshfilter.envoy.runner",
    "RunningEnvoy": "meshfilter.envoy.runner",
    "ProcessBackend": "meshfilter.envoy.runner",
    "ContainerBackend": "meshfilter.envoy.container",
    "validate_bootstrap": "meshfilter.envoy.validate",
    "EchoServer": "meshfilter.envoy.echo",
    "find_envoy": "meshfilter.envoy.binary",
    # oras
    "RegistryClient": "meshfilter.oras.client",
    "resolve_digest": "meshfilter.oras.client",
    "parse_reference": "meshfilter.oras.reference",
    "Reference": "meshfilter.oras.reference",
    "build_artifact": "meshfilter.oras.formats",
    "build_runtime_config": "meshfilter.oras.runtime_config",
    "credentials_for_host": "meshfilter.oras.auth",
    "auths_entry_for_host": "meshfilter.oras.auth",
    "read_layout": "meshfilter.oras.layout",
    "write_layout": "meshfilter.oras.layout",
    "copy_artifact": "meshfilter.oras.copy",
    "RegistryServer": "meshfilter.oras.server",
    # k8s
    "asm_filter_deployment": "meshfilter.k8s.asm",
    "wasm_plugin": "meshfilter.k8s.wasmplugin",
    "wasm_envoy_filter": "meshfilter.k8s.wasm_envoyfilter",
    "envoy_extension_policy": "meshfilter.k8s.envoy_gateway",
    "lua_envoy_filter": "meshfilter.k8s.lua_envoyfilter",
    "envoy_filter": "meshfilter.k8s.envoyfilter",
    "proxy_version_regex": "meshfilter.k8s.envoyfilter",
    "pull_secret_for_image": "meshfilter.k8s.secret",
    "validate_resource": "meshfilter.k8s.schema",
    "check_resource": "meshfilter.k8s.envoy_check",
    "to_yaml": "meshfilter.k8s.output",
    # transcoder
    "compile_proto": "meshfilter.transcoder.compile",
    "TranscoderOptions": "meshfilter.transcoder.config",
    "transcoder_envoyfilter": "meshfilter.transcoder.envoyfilter",
    "transcoder_bootstrap": "meshfilter.transcoder.bootstrap",
    # demo
    "ab_mesh": "meshfilter.demo.run",
    "canary_mesh": "meshfilter.demo.run",
}

if TYPE_CHECKING:  # let type checkers and IDEs see the lazy names
    from meshfilter.demo.run import ab_mesh, canary_mesh
    from meshfilter.envoy.binary import find_envoy
    from meshfilter.envoy.container import ContainerBackend
    from meshfilter.envoy.echo import EchoServer
    from meshfilter.envoy.runner import ProcessBackend, RunningEnvoy, get_backend, start_envoy
    from meshfilter.envoy.validate import validate_bootstrap
    from meshfilter.filters.propagate import PropagateConfig
    from meshfilter.filters.propagate import parse_config as parse_propagate_config
    from meshfilter.filters.tagging.loader import load_rules
    from meshfilter.filters.tagging.model import Match, Rule, RuleSet, seed_ruleset
    from meshfilter.filters.tagging.semantics import evaluate as evaluate_rules
    from meshfilter.k8s.asm import asm_filter_deployment
    from meshfilter.k8s.envoy_check import check_resource
    from meshfilter.k8s.envoy_gateway import envoy_extension_policy
    from meshfilter.k8s.envoyfilter import envoy_filter, proxy_version_regex
    from meshfilter.k8s.lua_envoyfilter import lua_envoy_filter
    from meshfilter.k8s.output import to_yaml
    from meshfilter.k8s.schema import validate_resource
    from meshfilter.k8s.secret import pull_secret_for_image
    from meshfilter.k8s.wasm_envoyfilter import wasm_envoy_filter
    from meshfilter.k8s.wasmplugin import wasm_plugin
    from meshfilter.lua.codegen import compile_rules as compile_rules_to_lua
    from meshfilter.lua.python_filter import build_python_filter as python_filter_to_lua
    from meshfilter.oras.auth import auths_entry_for_host, credentials_for_host
    from meshfilter.oras.client import RegistryClient, resolve_digest
    from meshfilter.oras.copy import copy_artifact
    from meshfilter.oras.formats import build_artifact
    from meshfilter.oras.layout import read_layout, write_layout
    from meshfilter.oras.reference import Reference, parse_reference
    from meshfilter.oras.runtime_config import build_runtime_config
    from meshfilter.oras.server import RegistryServer
    from meshfilter.sdk.checker import check_file as check_filter
    from meshfilter.sdk.reference import run_request
    from meshfilter.transcoder.bootstrap import transcoder_bootstrap
    from meshfilter.transcoder.compile import compile_proto
    from meshfilter.transcoder.config import TranscoderOptions
    from meshfilter.transcoder.envoyfilter import transcoder_envoyfilter
    from meshfilter.wasm.codegen import ModuleBuilder, assemble
    from meshfilter.wasm.emulator import HostEmulator
    from meshfilter.wasm.propagate import build_propagate_header
    from meshfilter.wasm.python_filter import build_python_filter
    from meshfilter.wasm.tag_rules import build_tag_rules


def __getattr__(name: str) -> Any:
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'meshfilter' has no attribute {name!r}")
    module, _, attr = target.partition(":")
    value = getattr(importlib.import_module(module), attr or name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "__version__",
    "AuthError",
    "ConfigError",
    "ContainerError",
    "DemoError",
    "DigestMismatchError",
    "EnvoyError",
    "EnvoyValidationError",
    "HostCallError",
    "K8sError",
    "LuaError",
    "MeshfilterError",
    "NotFoundError",
    "NotWasmArtifactError",
    "RegistryError",
    "TranscoderError",
    "UsageError",
    "WasmError",
    *_LAZY,
]
