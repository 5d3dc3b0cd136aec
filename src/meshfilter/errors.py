"""The exception tree of meshfilter.

Every error meshfilter raises on purpose derives from :class:`MeshfilterError`. Each carries
structured fields (``what``, ``where``, ``hint``) and renders as one line:

    <where>: <what> (hint: <hint>)

The CLI prints that line and exits with ``exit_code`` (2 for usage errors, 1 for failures).
Nothing in an error's text may carry a secret: callers pass redacted values only.

The library speaks its domain, not the command line. An error about one input names that input's
*field* (the parameter or attribute name: ``abi``, ``root_id``, ``plain_http``) as ``where``, and its
text names fields in backticks (``"drop `plain_http` for an HTTPS registry"``). :meth:`line` renders
them as they are; the CLI renders them as its flags (``--abi``, ``--plain-http``) in one place,
``meshfilter.cli._fields``, by passing ``spell``. No library module names a CLI flag.

Tree::

    MeshfilterError
    ├── UsageError             bad flags or input files (exit 2)
    │   └── ConfigError        a filter configuration that is invalid
    ├── WasmError              codegen, assembly, emulator
    │   ├── HostCallError      the emulator met a host call it does not implement
    │   └── WasmTrap           the module trapped in the emulator (backtrace, last log lines)
    ├── LuaError               Lua codegen or LuaJIT compile failure
    ├── TranscoderError        proto compile, descriptor, service lookup
    ├── RegistryError          OCI registry / layout failures
    │   ├── AuthError          401/403
    │   ├── NotFoundError      404 on pull
    │   ├── DigestMismatchError
    │   └── NotWasmArtifactError
    ├── EnvoyError             Envoy failed to start, validate or answer
    │   └── EnvoyValidationError
    ├── ContainerError         container engine failures
    ├── K8sError               resource rendering failures
    └── DemoError              a demo component (app, Envoy) failed; carries its log tail
"""

from __future__ import annotations

import re
from collections.abc import Callable

_FIELD_REF = re.compile(r"`([a-z][a-z0-9_]*)`")

class MeshfilterError(Exception):
    """Base of every meshfilter error. One line, structured fields."""

    exit_code: int = 1

    def __init__(self, what: str, *, where: str | None = None, hint: str | None = None) -> None:
        self.what = what
        self.where = where
        self.hint = hint
        super().__init__(self.line())

    def line(self, spell: Callable[[str], str | None] | None = None) -> str:
        """The one-line rendering. ``spell(field)`` may rename a field (a ``where`` that is a field, or a
        backticked field in the text), e.g. to its CLI flag; None keeps the field as written."""
        where, what, hint = self.where, self.what, self.hint
        if spell is not None:
            def sub(text: str) -> str:
                return _FIELD_REF.sub(lambda m: spell(m[1]) or m[0], text)

            where = (spell(where) or where) if where else where
            what = sub(what)
            hint = sub(hint) if hint else hint
        text = f"{where}: {what}" if where else what
        if hint:
            text += f" (hint: {hint})"
        return " ".join(text.split("\n"))


class UsageError(MeshfilterError):
    exit_code = 2


class ConfigError(UsageError):
    """A filter configuration (plugin parameters, rules file) is invalid."""


class WasmError(MeshfilterError):
    pass


class HostCallError(WasmError):
    def __init__(self, what: str, *, import_name: str, where: str | None = None,
                 hint: str | None = None) -> None:
        self.import_name = import_name
        super().__init__(what, where=where, hint=hint)


class WasmTrap(WasmError):
    """A module trapped (or was interrupted) in the emulator. ``callback`` is the export that was
    running, ``reason`` the trap in Envoy's (V8's) words, ``backtrace`` the Wasm frames innermost first
    (``"0x1a2 - name"``), ``last_logs`` the module's last log lines (a Rust panic logs "panicked at ..."
    just before it traps), ``envoy_message`` the multi-line text Envoy logs for it."""

    def __init__(self, what: str, *, callback: str, reason: str, backtrace: tuple[str, ...] = (),
                 last_logs: tuple[str, ...] = (), envoy_message: str = "", where: str | None = None,
                 hint: str | None = None) -> None:
        self.callback = callback
        self.reason = reason
        self.backtrace = backtrace
        self.last_logs = last_logs
        self.envoy_message = envoy_message
        super().__init__(what, where=where, hint=hint)


class LuaError(MeshfilterError):
    pass


class TranscoderError(MeshfilterError):
    pass


class RegistryError(MeshfilterError):
    pass


class AuthError(RegistryError):
    pass


class NotFoundError(RegistryError):
    pass


class DigestMismatchError(RegistryError):
    pass


class NotWasmArtifactError(RegistryError):
    pass


class EnvoyError(MeshfilterError):
    def __init__(self, what: str, *, where: str | None = None, hint: str | None = None,
                 log_tail: str = "") -> None:
        self.log_tail = log_tail
        super().__init__(what, where=where, hint=hint)


class EnvoyValidationError(EnvoyError):
    pass


class ContainerError(MeshfilterError):
    pass


class K8sError(MeshfilterError):
    pass


class DemoError(MeshfilterError):
    """A component of a local demo mesh failed (to start, or to answer); ``log_tail`` is its log."""

    def __init__(self, what: str, *, where: str | None = None, hint: str | None = None,
                 component: str = "", log_tail: str = "") -> None:
        self.component = component
        self.log_tail = log_tail
        super().__init__(what, where=where, hint=hint)
