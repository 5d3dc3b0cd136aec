"""Compile .proto files to a FileDescriptorSet with grpcio-tools' protoc, in-process.

The equivalent of::

    protoc -I DIR... --include_imports --include_source_info --descriptor_set_out=OUT FILE.proto

without a separately installed protoc. Well-known imports are resolved from installed packages:

* ``google/api/annotations.proto``, ``google/api/http.proto`` (and the other googleapis common
  protos) from the googleapis-common-protos install directory;
* ``google/protobuf/*.proto`` from grpcio-tools' bundled ``_proto`` directory.

protoc writes its diagnostics to file descriptor 2 from C++, so this module redirects that
descriptor to a temporary file while protoc runs (under a lock) and turns the first diagnostic into
a :class:`~meshfilter.errors.TranscoderError` whose ``where`` is ``file:line``.
"""

from __future__ import annotations

import os
import re
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path

from meshfilter.errors import TranscoderError, UsageError

_LOCK = threading.Lock()
# "path/x.proto:12:5: message" (protoc's diagnostic format)
_DIAG = re.compile(r"^(?P<file>[^:\n]+\.proto):(?P<line>\d+):(?P<col>\d+): (?P<msg>.+)$", re.M)


def grpc_tools_include() -> Path:
    """grpcio-tools' bundled well-known types (``google/protobuf/*.proto``)."""
    import grpc_tools

    return Path(grpc_tools.__file__).resolve().parent / "_proto"


def googleapis_include() -> Path:
    """The directory holding ``google/api/annotations.proto`` (googleapis-common-protos)."""
    import google.api.annotations_pb2 as ann

    root = Path(ann.__file__).resolve().parent.parent.parent
    if not (root / "google" / "api" / "annotations.proto").is_file():  # pragma: no cover
        raise TranscoderError("googleapis-common-protos ships no google/api/annotations.proto",
                              where=str(root), hint="pip install --force-reinstall googleapis-common-protos")
    return root


def default_includes() -> list[Path]:
    """Well-known include directories, grpc_tools first so google/protobuf/* comes from it."""
    return [grpc_tools_include(), googleapis_include()]


def _relative_to_include(proto: Path, includes: Sequence[Path]) -> str | None:
    for inc in includes:
        try:
            return proto.relative_to(inc).as_posix()
        except ValueError:
            continue
    return None


def compile_protos(protos: Sequence[str | os.PathLike[str]],
                   include_dirs: Sequence[str | os.PathLike[str]] = (), *,
                   include_imports: bool = True, include_source_info: bool = True) -> bytes:
    """Compile ``protos`` into a serialized FileDescriptorSet.

    Each proto must exist. Without ``include_dirs`` covering it, its parent directory is added as an
    include path (like ``protoc --proto_path=$(dirname FILE)``). Raises TranscoderError with
    ``file:line`` on compile errors, UsageError when a file or include directory is missing.
    """
    from grpc_tools import protoc

    if not protos:
        raise UsageError("no .proto file given", where="proto", hint="pass `proto` FILE.proto")
    user_incs: list[Path] = []
    for d in include_dirs:
        p = Path(d).resolve()
        if not p.is_dir():
            raise UsageError(f"include directory {str(d)!r} does not exist", where="include",
                             hint="pass an existing directory to `include`")
        user_incs.append(p)
    names: list[str] = []
    for raw in protos:
        proto = Path(raw).resolve()
        if not proto.is_file():
            raise UsageError(f"proto file {str(raw)!r} does not exist", where="proto",
                             hint="check the path")
        rel = _relative_to_include(proto, user_incs)
        if rel is None:
            user_incs.append(proto.parent)
            rel = proto.name
        names.append(rel)
    includes = [*user_incs, *default_includes()]
    with tempfile.TemporaryDirectory(prefix="meshfilter-protoc-") as tmp:
        out = Path(tmp) / "descriptor.pb"
        argv = ["grpc_tools.protoc", *(f"--proto_path={i}" for i in includes),
                f"--descriptor_set_out={out}"]
        if include_imports:
            argv.append("--include_imports")
        if include_source_info:
            argv.append("--include_source_info")
        argv += names
        rc, diagnostics = _run_protoc(protoc.main, argv, Path(tmp) / "stderr.txt")
        if rc != 0 or not out.is_file():
            raise _compile_error(diagnostics, names, user_incs)
        return out.read_bytes()


def compile_proto(proto: str | os.PathLike[str], include_dirs: Sequence[str | os.PathLike[str]] = ()) -> bytes:
    """Compile one proto (with imports and source info) into a serialized FileDescriptorSet."""
    return compile_protos([proto], include_dirs)


def _run_protoc(main: object, argv: list[str], err_path: Path) -> tuple[int, str]:
    """Run protoc.main(argv) with fd 2 captured into err_path; returns (rc, captured text)."""
    assert callable(main)
    with _LOCK:
        import sys

        sys.stderr.flush()
        saved = os.dup(2)
        try:
            with open(err_path, "wb") as fh:
                os.dup2(fh.fileno(), 2)
                try:
                    rc = int(main(argv))
                finally:
                    os.dup2(saved, 2)
        finally:
            os.close(saved)
    return rc, err_path.read_text(errors="replace")


def _compile_error(diagnostics: str, names: Sequence[str], includes: Sequence[Path]) -> TranscoderError:
    m = _DIAG.search(diagnostics)
    if m:
        file = m.group("file")
        shown = file
        for inc in includes:
            cand = inc / file
            if cand.is_file():
                shown = str(cand)
                break
        return TranscoderError(m.group("msg").strip(), where=f"{shown}:{m.group('line')}",
                               hint="fix the .proto; imports resolve from -I dirs, googleapis-common-protos "
                                    "(google/api/*) and grpcio-tools (google/protobuf/*)")
    first = next((ln.strip() for ln in diagnostics.splitlines() if ln.strip()), "protoc failed")
    return TranscoderError(first, where=", ".join(names),
                           hint="check the -I include directories and the import paths")


def googleapis_protos() -> list[Path]:
    """Every .proto shipped by googleapis-common-protos (a large, real descriptor set for tests and
    benchmarks): compile with ``compile_protos(googleapis_protos(), [googleapis_include()])``."""
    root = googleapis_include()
    return sorted(p for p in (root / "google").rglob("*.proto")
                  if not p.relative_to(root).as_posix().startswith("google/protobuf/"))
