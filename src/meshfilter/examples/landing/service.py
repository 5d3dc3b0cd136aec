"""The LandingService (seed sections 4.1-4.2): four gRPC models, server and client, on grpcio.

No generated code: ``landing.proto`` (shipped as package data) is compiled at first use with
grpcio-tools' protoc in-process (:mod:`meshfilter.transcoder.compile`), the message classes are
built from that descriptor set in a private descriptor pool, and the server and client use grpcio's
generic handlers and multi-callables with those classes' (de)serializers.

Behaviour: ``data`` indexes :data:`HELLOS`; streaming requests carry comma-separated indexes. Each
result's ``kv`` holds ``id`` (a uuid), ``idx``, ``data`` (the greeting) and ``meta`` = ``PYTHON``
(the server's language); ``status`` is 200. An index that is not a number in range is refused with
``INVALID_ARGUMENT`` (which the transcoder turns into HTTP 400 with ``convert_grpc_status``).
"""

from __future__ import annotations

import functools
import os
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent import futures
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import descriptor_pool, json_format, message_factory

PACKAGE = "org.feuyeux.grpc"
SERVICE = f"{PACKAGE}.LandingService"
HELLOS = ("Hello", "Bonjour", "Hola", "こんにちは", "Ciao", "안녕하세요")
LANGUAGE = "PYTHON"
DEFAULT_PORT = 9996
METHODS = ("talk", "talkOneAnswerMore", "talkMoreAnswerOne", "talkBidirectional")


def proto_text() -> str:
    """The annotated landing.proto shipped with meshfilter."""
    return resources.files(__package__).joinpath("landing.proto").read_text(encoding="utf-8")


@functools.lru_cache(maxsize=1)
def descriptor_set() -> bytes:
    """landing.proto compiled with imports and source info (a serialized FileDescriptorSet)."""
    from meshfilter.transcoder.compile import compile_proto

    with resources.as_file(resources.files(__package__).joinpath("landing.proto")) as path:
        return compile_proto(Path(path))


@dataclass(frozen=True)
class Messages:
    TalkRequest: Any
    TalkResponse: Any
    TalkResult: Any
    OK: int
    FAIL: int


@functools.lru_cache(maxsize=1)
def messages() -> Messages:
    """Message classes built at runtime from :func:`descriptor_set` in a private pool."""
    from google.protobuf import descriptor_pb2

    pool = descriptor_pool.DescriptorPool()
    for f in descriptor_pb2.FileDescriptorSet.FromString(descriptor_set()).file:
        pool.AddSerializedFile(f.SerializeToString())

    def cls(name: str) -> Any:
        return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{PACKAGE}.{name}"))

    enum = pool.FindEnumTypeByName(f"{PACKAGE}.ResultType")
    return Messages(cls("TalkRequest"), cls("TalkResponse"), cls("TalkResult"),
                    enum.values_by_name["OK"].number, enum.values_by_name["FAIL"].number)


class BadIndex(ValueError):
    pass


def _indexes(data: str) -> list[int]:
    out = []
    for part in data.split(","):
        part = part.strip()
        if not part.isdigit() or int(part) >= len(HELLOS):
            raise BadIndex(f"data {part!r} is not an index of 0..{len(HELLOS) - 1}")
        out.append(int(part))
    return out


def build_result(index: int) -> Any:
    m = messages()
    result = m.TalkResult(id=time.time_ns(), type=m.OK)
    result.kv["id"] = str(uuid.uuid4())
    result.kv["idx"] = str(index)
    result.kv["data"] = HELLOS[index]
    result.kv["meta"] = LANGUAGE
    return result


def build_response(indexes: Iterable[int]) -> Any:
    return messages().TalkResponse(status=200, results=[build_result(i) for i in indexes])


class LandingServicer:
    """The four models. Bad indexes abort with INVALID_ARGUMENT."""

    def talk(self, request: Any, context: grpc.ServicerContext) -> Any:
        return build_response(self._parse(request.data, context))

    def talkOneAnswerMore(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:  # noqa: N802
        for i in self._parse(request.data, context):
            yield build_response([i])

    def talkMoreAnswerOne(self, requests: Iterator[Any], context: grpc.ServicerContext) -> Any:  # noqa: N802
        indexes: list[int] = []
        for request in requests:
            indexes += self._parse(request.data, context)
        return build_response(indexes)

    def talkBidirectional(self, requests: Iterator[Any],  # noqa: N802
                          context: grpc.ServicerContext) -> Iterator[Any]:
        for request in requests:
            yield build_response(self._parse(request.data, context))

    @staticmethod
    def _parse(data: str, context: grpc.ServicerContext) -> list[int]:
        try:
            return _indexes(data)
        except BadIndex as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
            raise  # unreachable: abort raises


def generic_handler(servicer: LandingServicer | None = None) -> grpc.GenericRpcHandler:
    s = servicer or LandingServicer()
    m = messages()
    de, ser = m.TalkRequest.FromString, m.TalkResponse.SerializeToString
    handlers = {
        "talk": grpc.unary_unary_rpc_method_handler(s.talk, de, ser),
        "talkOneAnswerMore": grpc.unary_stream_rpc_method_handler(s.talkOneAnswerMore, de, ser),
        "talkMoreAnswerOne": grpc.stream_unary_rpc_method_handler(s.talkMoreAnswerOne, de, ser),
        "talkBidirectional": grpc.stream_stream_rpc_method_handler(s.talkBidirectional, de, ser),
    }
    return grpc.method_handlers_generic_handler(SERVICE, handlers)


def serve(port: int = DEFAULT_PORT, host: str = "127.0.0.1", *, workers: int = 8) -> tuple[grpc.Server, int]:
    """Start the server (non-blocking); returns it and the bound port (``port=0`` picks one)."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers))
    server.add_generic_rpc_handlers((generic_handler(),))
    bound = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise OSError(f"cannot bind {host}:{port}")
    server.start()
    return server, bound


def server_target(server: str | None = None) -> str:
    """``--server`` or ``GRPC_SERVER`` (host, or host:port; the seed's variable), default port 9996."""
    target = server or os.environ.get("GRPC_SERVER") or "localhost"
    if ":" not in target.rsplit("]", 1)[-1]:
        target = f"{target}:{DEFAULT_PORT}"
    return target


class LandingClient:
    """Client of the four models over one channel."""

    def __init__(self, target: str, *, timeout: float = 10.0) -> None:
        self.channel = grpc.insecure_channel(target)
        self.timeout = timeout
        m = messages()
        ser, de = m.TalkRequest.SerializeToString, m.TalkResponse.FromString
        base = f"/{SERVICE}/"
        self._talk: Callable[..., Any] = self.channel.unary_unary(base + "talk", ser, de)
        self._one_more: Callable[..., Any] = self.channel.unary_stream(base + "talkOneAnswerMore", ser, de)
        self._more_one: Callable[..., Any] = self.channel.stream_unary(base + "talkMoreAnswerOne", ser, de)
        self._bidi: Callable[..., Any] = self.channel.stream_stream(base + "talkBidirectional", ser, de)

    def request(self, data: str, meta: str = LANGUAGE) -> Any:
        return messages().TalkRequest(data=data, meta=meta)

    def talk(self, data: str = "0") -> Any:
        return self._talk(self.request(data), timeout=self.timeout)

    def talk_one_answer_more(self, data: str = "0,1,2") -> list[Any]:
        return list(self._one_more(self.request(data), timeout=self.timeout))

    def talk_more_answer_one(self, datas: Iterable[str] = ("0", "1", "2")) -> Any:
        return self._more_one(iter([self.request(d) for d in datas]), timeout=self.timeout)

    def talk_bidirectional(self, datas: Iterable[str] = ("3", "4", "5")) -> list[Any]:
        return list(self._bidi(iter([self.request(d) for d in datas]), timeout=self.timeout))

    def wait_ready(self, timeout: float = 10.0) -> None:
        grpc.channel_ready_future(self.channel).result(timeout=timeout)

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> LandingClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def to_json(message: Any) -> dict[str, Any]:
    """A response as the transcoder prints it (camelCase names, enums by name, primitives always)."""
    return json_format.MessageToDict(message, always_print_fields_with_no_presence=True)


def run_all(target: str) -> dict[str, Any]:
    """All four models against ``target``, as JSON-ready dicts."""
    with LandingClient(target) as c:
        return {
            "talk": to_json(c.talk("0")),
            "talkOneAnswerMore": [to_json(r) for r in c.talk_one_answer_more("0,1,2")],
            "talkMoreAnswerOne": to_json(c.talk_more_answer_one(["0", "1", "2"])),
            "talkBidirectional": [to_json(r) for r in c.talk_bidirectional(["3", "4", "5"])],
        }
