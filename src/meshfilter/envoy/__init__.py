"""Envoy: bootstraps (pure builders), runners (process, container), validation, echo upstream."""

from meshfilter.envoy import bootstrap
from meshfilter.envoy.base import Backend, HotRestart, RunningEnvoy
from meshfilter.envoy.binary import envoy_version, find_envoy
from meshfilter.envoy.echo import EchoServer
from meshfilter.envoy.readiness import HttpReadiness
from meshfilter.envoy.runner import EnvoyProcess, ProcessBackend, get_backend, start_envoy
from meshfilter.envoy.validate import envoy_error_line, refusal_line, validate_bootstrap

__all__ = [
    "Backend",
    "EchoServer",
    "EnvoyProcess",
    "HotRestart",
    "HttpReadiness",
    "ProcessBackend",
    "RunningEnvoy",
    "bootstrap",
    "envoy_error_line",
    "envoy_version",
    "find_envoy",
    "get_backend",
    "refusal_line",
    "start_envoy",
    "validate_bootstrap",
]
