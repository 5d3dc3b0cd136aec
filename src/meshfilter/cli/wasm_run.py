"""`meshfilter wasm run|check|diff MODULE ...`: the proxy-wasm host emulator from the command line.

* ``run``: one request through the emulator (headers, body, trailers, the upstream's answer, the
  answers of HTTP calls), printing what the module did;
* ``check``: Envoy 1.40's static checks (imports, ABI, callback signatures), one line per problem;
* ``diff``: the same request in the emulator and in a real Envoy, printing every difference.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from meshfilter.cli._common import parse_pairs
from meshfilter.errors import UsageError


def register_run(wsub: argparse._SubParsersAction) -> None:
    p = wsub.add_parser(
        "run", help="run one request through a proxy-wasm module in the host emulator",
        description="Start the module in the proxy-wasm host emulator (wasmtime) as Envoy would: VM start, "
                    "configure with --config, then one HTTP request with the given headers. Prints whether "
                    "the configuration was accepted, the resulting request headers, HTTP and gRPC calls, the "
                    "local reply, metrics, shared data and the module's logs. "
                    "Exit 1 when the module refuses its configuration.")
    _module_flags(p)
    p.add_argument("--trailer", action="append", default=[], metavar="NAME=VALUE",
                   help="a request trailer; repeat for several")
    p.add_argument("--response-header", action="append", default=[], metavar="NAME=VALUE",
                   help="a response header; when given, the response runs through the module too")
    p.add_argument("--response-body", default=None, help="the response body (with --response-header)")
    p.add_argument("--property", action="append", default=[], metavar="PATH=VALUE",
                   help="a property the module can read, e.g. request.path=/x or "
                        "metadata.filter_metadata=...; repeat for several")
    p.add_argument("--http-call-response", default=None, metavar="STATUS:BODY",
                   help="answer every HTTP call of the module with this status and body, e.g. 200:ok")
    p.add_argument("--downstream-data", action="append", default=None, metavar="DATA",
                   help="run a TCP connection through a network filter instead of an HTTP request: a chunk the "
                        "client sends; repeat for several")
    p.add_argument("--upstream-data", action="append", default=[], metavar="DATA",
                   help="with --downstream-data: a chunk the upstream sends back; repeat for several")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(handler=cmd_run)
    _register_check(wsub)
    _register_diff(wsub)


def _module_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("module", metavar="MODULE", help="the .wasm (or .wat) file")
    p.add_argument("--config", default="",
                   help="plugin configuration, e.g. JSON text; @FILE reads it from FILE (default empty)")
    p.add_argument("--vm-config", default="", help="VM configuration; @FILE reads it from FILE")
    p.add_argument("--root-id", default="", help="the plugin's root id (default '')")
    p.add_argument("--vm-id", default=None,
                   help="the VM id (default: the root id, as 'meshfilter envoy run' configures it)")
    p.add_argument("--header", action="append", default=[], metavar="NAME=VALUE",
                   help="a request header; repeat for several (and for several values of one name); "
                        ":method, :path and :authority set those (default, with no --header: GET / as "
                        "Envoy presents it, :authority localhost :path / :method GET :scheme http: a "
                        "request in Envoy never has an empty header map)")
    p.add_argument("--body", default=None, help="the request body; @FILE reads it from FILE")
    p.add_argument("--cluster", action="append", default=[], metavar="NAME",
                   help="a cluster the module's HTTP and gRPC calls may use; repeat for several")


def _register_check(wsub: argparse._SubParsersAction) -> None:
    p = wsub.add_parser(
        "check", help="check a module against Envoy 1.40's proxy-wasm host before deploying it",
        description="Compare the module's imports with what Envoy 1.40's host provides for its ABI, and "
                    "the signatures of its callbacks with that ABI. Prints one line per problem, in "
                    "Envoy's words. Exit 1 when Envoy would refuse the module.")
    p.add_argument("module", metavar="MODULE", help="the .wasm (or .wat) file")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(handler=cmd_check)


def _register_diff(wsub: argparse._SubParsersAction) -> None:
    p = wsub.add_parser(
        "diff", help="run one request in the emulator and in a real Envoy and print the differences",
        description="Run the module as an HTTP filter in a real Envoy (as 'meshfilter envoy run' does, with "
                    "an upstream answering --response-* and one per --cluster answering "
                    "--http-call-response) and in the emulator, send one request, and print every difference: "
                    "refusal, upstream headers, local reply, logs. Exit 1 when they differ.")
    _module_flags(p)
    p.add_argument("--response-header", action="append", default=[], metavar="NAME=VALUE",
                   help="a header of the upstream's answer (default content-type=text/plain)")
    p.add_argument("--response-body", default="ok", help="the upstream's answer (default 'ok')")
    p.add_argument("--http-call-response", default="200:", metavar="STATUS:BODY",
                   help="what every --cluster answers to the module's HTTP calls (default '200:')")
    p.add_argument("--backend", choices=["process", "container"], default="process")
    p.add_argument("--json", action="store_true", help="print both observations as JSON")
    p.set_defaults(handler=cmd_diff)


def _text_or_file(value: str, flag: str) -> bytes:
    if value.startswith("@"):
        path = Path(value[1:])
        try:
            return path.read_bytes()
        except OSError as exc:
            raise UsageError(f"cannot read {path}: {exc.strerror}", where=flag,
                             hint="give the text itself or @ and an existing file") from None
    return value.encode()


def parse_headers(values: list[str], flag: str) -> list[tuple[str, str]]:
    return parse_pairs(values, flag=flag, example="user-agent=curl")


def _call_response(value: str, flag: str) -> tuple[int, bytes]:
    status, sep, body = value.partition(":")
    if not sep or not status.isdigit():
        raise UsageError(f"{flag} {value!r} is not STATUS:BODY", where=flag, hint=f"for example {flag} 200:ok")
    return int(status), body.encode()


def _property_value(text: str) -> Any:
    """A --property value: an integer or true/false as Envoy serializes them, else the text."""
    if text.lstrip("-").isdigit():
        return int(text)
    if text in ("true", "false"):
        return text == "true"
    return text


# the request `wasm run` sends when no --header is given: the pseudo-headers every request has in Envoy
DEFAULT_REQUEST = ((":authority", "localhost"), (":path", "/"), (":method", "GET"), (":scheme", "http"))


def cmd_run(args: argparse.Namespace) -> int:
    from meshfilter.wasm.emulator import HostEmulator

    headers = parse_headers(args.header, "--header") if args.header else list(DEFAULT_REQUEST)
    response = parse_headers(args.response_header, "--response-header") if args.response_header else None
    trailers = parse_headers(args.trailer, "--trailer") if args.trailer else None
    pairs = parse_pairs(args.property, flag="--property", form="path=value", example="request.path=/x")
    props: dict[str | tuple[str, ...], Any] = {k: _property_value(v) for k, v in pairs}
    answer: Any = None
    if args.http_call_response is not None:
        status, body = _call_response(args.http_call_response, "--http-call-response")
        answer = ([(":status", str(status)), ("content-length", str(len(body)))], body, [])
    emu = HostEmulator(Path(args.module), root_id=args.root_id, vm_id=args.vm_id,
                       plugin_config=_text_or_file(args.config, "--config"),
                       vm_config=_text_or_file(args.vm_config, "--vm-config"), properties=props,
                       clusters=args.cluster)
    ok = emu.start()
    if args.downstream_data is not None:
        return _run_connection(emu, args, ok)
    req_body = _text_or_file(args.body, "--body") if args.body is not None else None
    result = emu.run_request(headers, response_headers=response, body=req_body, trailers=trailers,
                             response_body=args.response_body, http_call_response=answer) if ok else None
    report: dict[str, Any] = {
        "abi": emu.abi_version,
        "vm_started": emu.vm_started,
        "configured": bool(emu.configured),
        "request_action": result.request_action.name.lower() if result else None,
        "request_headers": result.request_headers if result else None,
        "response_headers": result.response_headers if result else None,
        "foreign_calls": [c.name for c in emu.foreign_calls],
        "local_response": None,
        "logs": [{"level": r.level, "message": r.message} for r in emu.logs],
        "request_body": result.request_body.decode("utf-8", "replace") if result and req_body is not None else None,
        "response_body": (result.response_body.decode("utf-8", "replace")
                          if result and result.response_body is not None else None),
        "reached_upstream": result.reached_upstream if result else False,
        "http_calls": [{"token": c.token, "cluster": c.upstream, "headers": c.headers,
                        "body": c.body.decode("utf-8", "replace"), "timeout_ms": c.timeout_ms,
                        "answered": c.answered} for c in emu.http_calls],
        "grpc_calls": [{"token": c.token, "cluster": c.cluster, "service": c.service, "method": c.method,
                        "stream": c.stream, "message": c.message.hex()} for c in emu.grpc_calls],
        "metrics": {m.name: m.value for m in emu.metrics.values()},
        "shared_data": {k.decode("utf-8", "replace"): v.decode("utf-8", "replace")
                        for k, (v, _) in emu.shared_data.items()},
    }
    if result and result.local_response:
        lr = result.local_response
        report["local_response"] = {"status": lr.status_code, "details": lr.details,
                                    "headers": lr.headers, "body": lr.body.decode("utf-8", "replace")}
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(_render(report))
    return 0 if ok else 1


def _run_connection(emu: Any, args: argparse.Namespace, ok: bool) -> int:
    from meshfilter.wasm.abi import FilterStatus

    result = emu.run_connection(args.downstream_data, args.upstream_data) if ok else None
    report: dict[str, Any] = {
        "abi": emu.abi_version, "vm_started": emu.vm_started, "configured": bool(emu.configured),
        "new_connection": FilterStatus(result.new_connection).name.lower() if result else None,
        "to_upstream": result.downstream_data.decode("utf-8", "replace") if result else None,
        "to_client": result.upstream_data.decode("utf-8", "replace") if result else None,
        "closed_by_module": list(result.closed) if result else [],
        "metrics": {m.name: m.value for m in emu.metrics.values()},
        "logs": [{"level": r.level, "message": r.message} for r in emu.logs],
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0 if ok else 1
    lines = [f"abi: {report['abi']}",
             "configure: " + ("ok" if report["configured"] else "refused")]
    if result:
        lines += [f"new connection: {report['new_connection']}", f"to upstream: {report['to_upstream']!r}",
                  f"to client: {report['to_client']!r}"]
    if report["metrics"]:
        lines.append("metrics: " + ", ".join(f"{k}={v}" for k, v in report["metrics"].items()))
    lines.append("logs:" if report["logs"] else "logs: (none)")
    lines += [f"  [{r['level']}] {r['message']}" for r in report["logs"]]
    print("\n".join(lines))
    return 0 if ok else 1


def _render(report: dict[str, Any]) -> str:
    lines = [f"abi: {report['abi']}",
             "configure: " + ("ok" if report["configured"] else
                              "refused (proxy_on_vm_start returned false)" if not report["vm_started"] else
                              "refused (proxy_on_configure returned false)")]
    if report["request_headers"] is not None:
        lines.append(f"request action: {report['request_action']}")
        lines.append("request headers:")
        lines += [f"  {k}: {v}" for k, v in report["request_headers"]]
    if report["request_body"] is not None:
        lines.append(f"request body: {report['request_body']!r}")
    if report["http_calls"]:
        lines.append("http calls:")
        for c in report["http_calls"]:
            path = next((v for k, v in c["headers"] if k == ":path"), "")
            lines.append(f"  {c['token']}: {c['cluster']} {path} ({'answered' if c['answered'] else 'pending'})")
    if report["grpc_calls"]:
        lines.append("grpc calls:")
        lines += [f"  {c['token']}: {c['cluster']} {c['service']}/{c['method']}"
                  f"{' (stream)' if c['stream'] else ''}" for c in report["grpc_calls"]]
    if report["response_headers"] is not None:
        lines.append("response headers:")
        lines += [f"  {k}: {v}" for k, v in report["response_headers"]]
    if report["response_body"] is not None and report["local_response"] is None:
        lines.append(f"response body: {report['response_body']!r}")
    if report["local_response"]:
        lr = report["local_response"]
        lines.append(f"local response: {lr['status']} {lr['details']}".rstrip())
        if lr["body"]:
            lines.append(f"local response body: {lr['body']!r}")
    if report["foreign_calls"]:
        lines.append("foreign calls: " + ", ".join(report["foreign_calls"]))
    if report["metrics"]:
        lines.append("metrics: " + ", ".join(f"{k}={v}" for k, v in report["metrics"].items()))
    if report["shared_data"]:
        lines.append("shared data: " + ", ".join(f"{k}={v!r}" for k, v in report["shared_data"].items()))
    lines.append("logs:" if report["logs"] else "logs: (none)")
    lines += [f"  [{r['level']}] {r['message']}" for r in report["logs"]]
    return "\n".join(lines)


def cmd_check(args: argparse.Namespace) -> int:
    from meshfilter.wasm.emulator import check_module

    result = check_module(Path(args.module))
    if args.json:
        print(json.dumps({"abi": result.abi, "ok": result.ok,
                          "problems": [{"kind": p.kind, "name": p.name, "message": p.message}
                                       for p in result.problems]}, indent=2))
    else:
        for problem in result.problems:
            print(f"{args.module}: {problem.message}")
        if result.ok:
            print(f"{args.module}: ok (proxy-wasm ABI {result.abi}, {len(result.imports)} imports; Envoy 1.40 "
                  "loads it)")
    return 0 if result.ok else 1


def cmd_diff(args: argparse.Namespace) -> int:
    from meshfilter.wasm.emulator.diff import diff_module

    headers = parse_headers(args.header, "--header")
    response = (parse_headers(args.response_header, "--response-header") if args.response_header
                else [("content-type", "text/plain")])
    result = diff_module(Path(args.module), root_id=args.root_id, vm_id=args.vm_id,
                         plugin_config=_text_or_file(args.config, "--config").decode(),
                         vm_config=_text_or_file(args.vm_config, "--vm-config").decode(), headers=headers,
                         body=_text_or_file(args.body, "--body") if args.body is not None else None,
                         response_headers=response, response_body=args.response_body.encode(),
                         clusters=args.cluster,
                         http_call_response=_call_response(args.http_call_response, "--http-call-response"),
                         backend=args.backend)
    if args.json:
        def obs(o: Any) -> dict[str, Any]:
            return {"refused": o.refused, "upstream_headers": o.upstream_headers,
                    "local_reply": None if o.local_reply is None else
                    {"status": o.local_reply[0], "headers": o.local_reply[1],
                     "body": o.local_reply[2].decode("utf-8", "replace")},
                    "start_logs": sorted(o.start_logs), "request_logs": o.request_logs}
        print(json.dumps({"same": result.same, "differences": result.differences,
                          "envoy": obs(result.envoy), "emulator": obs(result.emulator)}, indent=2))
    elif result.same:
        what = f"both refuse it: {result.envoy.refused.splitlines()[0]}" if result.envoy.refused else (
            "same upstream headers, local reply and logs")
        print(f"{args.module}: no difference between Envoy and the emulator ({what})")
    else:
        for line in result.differences:
            print(f"{args.module}: {line}")
    return 0 if result.same else 1
