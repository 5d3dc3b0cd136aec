"""meshfilter.oras: Wasm filters as OCI artifacts (asm, wasme, compat, docker, cncf) against real registries.

See docs/oras.md (user guide) and docs/architecture/oras.md (modules and API for other areas).
"""

from meshfilter.oras.auth import auths_entry_for_host, credentials_for_host, docker_config_path
from meshfilter.oras.client import Pulled, PulledFile, PushStats, RegistryClient, resolve_digest
from meshfilter.oras.copy import copy_artifact
from meshfilter.oras.formats import FORMATS, Artifact, build_artifact, detect_format, extract_module
from meshfilter.oras.layout import LayoutStore, read_layout, write_layout
from meshfilter.oras.reference import Reference, parse_reference
from meshfilter.oras.runtime_config import DEFAULT_ABI_VERSIONS, RuntimeConfig, build_runtime_config
from meshfilter.oras.server import RegistryServer

__all__ = [
    "DEFAULT_ABI_VERSIONS", "FORMATS", "Artifact", "LayoutStore", "Pulled", "PulledFile", "PushStats", "Reference",
    "RegistryClient", "RegistryServer", "RuntimeConfig", "auths_entry_for_host", "build_artifact",
    "build_runtime_config", "copy_artifact", "credentials_for_host", "detect_format", "docker_config_path",
    "extract_module", "parse_reference", "read_layout", "resolve_digest", "write_layout",
]
