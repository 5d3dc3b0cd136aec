"""`meshfilter wasm run MODULE --config JSON --header name=value ...`: one request through the emulator."""

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
                    "the configuration was accepted, the resulting request headers and the module's logs. "
                    "Exit 1 when the module refuses its configuration.")
    p.add_argument("module", metavar="MODULE", help="the .wasm (or .wat) file")
    p.add_argument("--config", default="",
                   help="plugin configuration, e.g. JSON text; @FILE reads it from FILE (default empty)")
    p.add_argument("--vm-config", default="", help="VM configuration; @FILE reads it from FILE")
    p.add_argument("--root-id", default="", help="the plugin's root id (default '')")
    p.add_argument("--header", action="append", default=[], metavar="NAME=VALUE",
                   help="a request header; repeat for several (and for several values of one name)")
    p.add_argument("--response-header", action="append", default=[], metavar="NAME=VALUE",
                   help="a response header; when given, the response headers run through the module too")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(handler=cmd_run)


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


def cmd_run(args: argparse.Namespace) -> int:
    from meshfilter.wasm.emulator import HostEmulator

    headers = parse_headers(args.header, "--header")
    response = parse_headers(args.response_header, "--response-header") if args.response_header else None
    emu = HostEmulator(Path(args.module), root_id=args.root_id,
                       plugin_config=_text_or_file(args.config, "--config"),
                       vm_config=_text_or_file(args.vm_config, "--vm-config"))
    ok = emu.start()
    result = emu.run_request(headers, response_headers=response) if ok else None
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


def _render(report: dict[str, Any]) -> str:
    lines = [f"abi: {report['abi']}",
             "configure: " + ("ok" if report["configured"] else
                              "refused (proxy_on_vm_start returned false)" if not report["vm_started"] else
                              "refused (proxy_on_configure returned false)")]
    if report["request_headers"] is not None:
        lines.append(f"request action: {report['request_action']}")
        lines.append("request headers:")
        lines += [f"  {k}: {v}" for k, v in report["request_headers"]]
    if report["response_headers"] is not None:
        lines.append("response headers:")
        lines += [f"  {k}: {v}" for k, v in report["response_headers"]]
    if report["local_response"]:
        lr = report["local_response"]
        lines.append(f"local response: {lr['status']} {lr['details']}")
    if report["foreign_calls"]:
        lines.append("foreign calls: " + ", ".join(report["foreign_calls"]))
    lines.append("logs:" if report["logs"] else "logs: (none)")
    lines += [f"  [{r['level']}] {r['message']}" for r in report["logs"]]
    return "\n".join(lines)
