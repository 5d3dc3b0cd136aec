"""meshfilter: build, package, deploy and prove Envoy data-plane filters from Python.

The public API is re-exported here; see docs/architecture.md for the module map.
"""

from __future__ import annotations

__version__ = "0.1.0"

from meshfilter.errors import (  # noqa: E402
    AuthError,
    ConfigError,
    ContainerError,
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

__all__ = [
    "__version__",
    "AuthError",
    "ConfigError",
    "ContainerError",
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
]
