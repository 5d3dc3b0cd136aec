"""Reading descriptor sets and selecting services like grpc-transcoder."""

from __future__ import annotations

import pytest
from google.protobuf import descriptor_pb2

from meshfilter.errors import TranscoderError, UsageError
from meshfilter.examples.landing import descriptor_set
from meshfilter.transcoder.descriptor import (
    HttpRule,
    list_services,
    load_descriptor_set,
    select_services,
    split_values,
    unannotated_warnings,
)


def _two_packages() -> descriptor_pb2.FileDescriptorSet:
    fds = load_descriptor_set(descriptor_set())
    extra = descriptor_pb2.FileDescriptorProto(name="shop.proto", package="acme.shop", syntax="proto3")
    extra.message_type.add(name="Req")
    for svc in ("CartService", "OrderService", "CartAdmin"):
        s = extra.service.add(name=svc)
        s.method.add(name="Get", input_type=".acme.shop.Req", output_type=".acme.shop.Req")
    fds.file.append(extra)
    return fds


def test_landing_http_rules_are_read() -> None:
    (svc,) = list_services(load_descriptor_set(descriptor_set()))
    assert svc.full_name == "org.feuyeux.grpc.LandingService"
    rules = {m.name: m.http for m in svc.methods}
    assert rules["talk"] == (HttpRule("GET", "/v1/talk/{data}/{meta}"),)
    assert rules["talkOneAnswerMore"] == (HttpRule("GET", "/v1/talk1n/{data}/{meta}"),)
    assert rules["talkMoreAnswerOne"] == (HttpRule("POST", "/v1/talkn1", "*"),)
    assert rules["talkBidirectional"] == (HttpRule("POST", "/v1/talknn", "*"),)
    streaming = {m.name: (m.client_streaming, m.server_streaming) for m in svc.methods}
    assert streaming == {"talk": (False, False), "talkOneAnswerMore": (False, True),
                         "talkMoreAnswerOne": (True, False), "talkBidirectional": (True, True)}
    assert unannotated_warnings([svc]) == []


def test_package_prefix_and_regex_selection() -> None:
    fds = _two_packages()
    assert [s.full_name for s in select_services(fds, ["org.feuyeux.grpc"], ["LandingService"])] == [
        "org.feuyeux.grpc.LandingService"]
    assert [s.full_name for s in select_services(fds, ["acme"])] == [
        "acme.shop.CartAdmin", "acme.shop.CartService", "acme.shop.OrderService"]
    # unanchored regex like grpc-transcoder (Go's MatchString); anchors narrow it
    assert [s.name for s in select_services(fds, ["acme.shop"], ["Cart"])] == ["CartAdmin", "CartService"]
    assert [s.name for s in select_services(fds, [], ["^Cart.*Service$"])] == ["CartService"]
    # repeatable and comma-separated (grpc-transcoder's string slices)
    names = {s.name for s in select_services(fds, [], split_values(["Order.*,Landing.*"]))}
    assert names == {"OrderService", "LandingService"}
    # a dotted prefix: "acme.sh" is not the package "acme.shop"
    with pytest.raises(TranscoderError):
        select_services(fds, ["acme.sh"])


def test_not_found_lists_available_services() -> None:
    with pytest.raises(TranscoderError) as ei:
        select_services(_two_packages(), ["org.feuyeux.grpc"], ["Nope"])
    line = ei.value.line()
    assert "no service matches `proto_pkg` org.feuyeux.grpc `proto_svc` Nope" in line
    assert "acme.shop.CartService" in line and "org.feuyeux.grpc.LandingService" in line


def test_bad_regex_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="not a valid regular expression"):
        select_services(_two_packages(), [], ["(unclosed"])


def test_unannotated_methods_warn_and_suggest_auto_mapping() -> None:
    services = select_services(_two_packages(), ["acme.shop"], ["^CartService$"])
    (warning,) = unannotated_warnings(services)
    assert "acme.shop.CartService.Get has no google.api.http annotation" in warning
    assert "`auto_mapping`" in warning and "POST /acme.shop.CartService/Get" in warning


def test_bad_descriptor_bytes() -> None:
    with pytest.raises(TranscoderError, match="not a FileDescriptorSet"):
        load_descriptor_set(b"\xff\xff\xff garbage", where="x.pb")
    with pytest.raises(TranscoderError, match="holds no files"):
        load_descriptor_set(b"", where="x.pb")


def test_descriptor_without_imports_is_refused() -> None:
    fds = load_descriptor_set(descriptor_set())
    only_main = descriptor_pb2.FileDescriptorSet(file=[fds.file[-1]])
    with pytest.raises(TranscoderError) as ei:
        load_descriptor_set(only_main.SerializeToString(), where="landing.pb")
    assert "google/api/annotations.proto" in ei.value.what
    assert "--include_imports" in (ei.value.hint or "")


def test_no_services_at_all() -> None:
    fds = descriptor_pb2.FileDescriptorSet(file=[descriptor_pb2.FileDescriptorProto(name="m.proto")])
    with pytest.raises(TranscoderError, match="defines no services"):
        select_services(load_descriptor_set(fds.SerializeToString()), ["x"])
