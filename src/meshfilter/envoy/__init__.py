"""Envoy: bootstraps (pure builders), runners (process, container), validation, echo upstream."""

from meshfilter.envoy import bootstrap
from meshfilter.envoy.binary import envoy_version, find_envoy
from meshfilter.envoy.echo import EchoServer
from meshfilter.envoy.readiness import HttpReadiness
from meshfilter.envoy.runner import (
    EnvoyProcess,
    ProcessBackend,
    RunningEnvoy,
    get_backend,
    start_envoy,
)
from meshfilter.envoy.validate import envoy_error_line, validate_bootstrap

__all__ = [
    "EchoServer",
    "EnvoyProcess",
    "HttpReadiness",
    "ProcessBackend",
    "RunningEnvoy",
    "bootstrap",
    "envoy_error_line",
    "envoy_version",
    "find_envoy",
    "get_backend",
    "start_envoy",
    "validate_bootstrap",
]
