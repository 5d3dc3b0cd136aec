"""Compiling .proto files in-process with grpcio-tools' protoc."""

from __future__ import annotations

from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2

from meshfilter.errors import TranscoderError, UsageError
from meshfilter.examples.landing import proto_text
from meshfilter.transcoder.compile import (
    compile_proto,
    compile_protos,
    googleapis_include,
    googleapis_protos,
    grpc_tools_include,
)


@pytest.fixture
def landing(tmp_path: Path) -> Path:
    p = tmp_path / "landing.proto"
    p.write_text(proto_text(), encoding="utf-8")
    return p


def _fds(data: bytes) -> descriptor_pb2.FileDescriptorSet:
    return descriptor_pb2.FileDescriptorSet.FromString(data)


def test_landing_compiles_with_imports_and_source_info(landing: Path) -> None:
    fds = _fds(compile_proto(landing))
    names = [f.name for f in fds.file]
    assert names[-1] == "landing.proto"
    assert {"google/api/annotations.proto", "google/api/http.proto", "google/protobuf/descriptor.proto"} <= set(names)
    main = fds.file[-1]
    assert main.package == "org.feuyeux.grpc"
    assert main.HasField("source_code_info") and len(main.source_code_info.location) > 10


def test_import_dirs_come_from_installed_packages() -> None:
    assert (grpc_tools_include() / "google/protobuf/descriptor.proto").is_file()
    assert (googleapis_include() / "google/api/annotations.proto").is_file()
    assert "grpc_tools" in str(grpc_tools_include())


def test_include_dir_resolves_sibling_imports(tmp_path: Path) -> None:
    (tmp_path / "api").mkdir()
    (tmp_path / "api" / "common.proto").write_text('syntax = "proto3";\npackage acme;\nmessage Empty2 {}\n')
    (tmp_path / "api" / "svc.proto").write_text(
        'syntax = "proto3";\npackage acme;\nimport "api/common.proto";\n'
        'service S { rpc Do (Empty2) returns (Empty2); }\n')
    fds = _fds(compile_proto(tmp_path / "api" / "svc.proto", [tmp_path]))
    assert [f.name for f in fds.file] == ["api/common.proto", "api/svc.proto"]


def test_compile_error_names_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.proto"
    bad.write_text('syntax = "proto3";\npackage x;\n\nmessage A {\n  strin a = 1;\n}\n')
    with pytest.raises(TranscoderError) as ei:
        compile_proto(bad)
    assert ei.value.where == f"{bad}:5"
    assert '"strin" is not defined' in ei.value.what
    assert "\n" not in ei.value.line()


def test_missing_import_is_reported_with_its_line(tmp_path: Path) -> None:
    bad = tmp_path / "imp.proto"
    bad.write_text('syntax = "proto3";\nimport "nowhere/gone.proto";\n')
    with pytest.raises(TranscoderError) as ei:
        compile_proto(bad)
    assert ei.value.where == f"{bad}:2"
    assert 'Import "nowhere/gone.proto" was not found' in ei.value.what


def test_missing_file_and_include_are_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        compile_proto(tmp_path / "nope.proto")
    (tmp_path / "a.proto").write_text('syntax = "proto3";\n')
    with pytest.raises(UsageError, match="include directory"):
        compile_proto(tmp_path / "a.proto", [tmp_path / "nodir"])
    with pytest.raises(UsageError):
        compile_protos([])


def test_all_googleapis_common_protos_compile_into_one_large_set() -> None:
    protos = googleapis_protos()
    assert len(protos) > 50
    data = compile_protos(protos, [googleapis_include()])
    fds = _fds(data)
    assert len(data) > 200_000
    assert len(fds.file) >= len(protos)
    services = {f"{f.package}.{s.name}" for f in fds.file for s in f.service}
    assert "google.longrunning.Operations" in services
