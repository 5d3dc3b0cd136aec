"""``meshfilter deploy asm|wasmplugin|envoyfilter|envoy-gateway``: render the deployment resources of a filter.

Output: multi-document YAML on stdout (``kubectl apply -f -``), ``-o json``, or ``-o DIR`` (one
file per resource, written atomically). ``--validate`` runs the resource's Envoy part through a real
``envoy --mode validate`` (the module must load).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from meshfilter.cli import deploy_checks as v
from meshfilter.errors import UsageError
from meshfilter.filters.propagate import ROOT_ID
from meshfilter.k8s import envoy_gateway as eg
from meshfilter.k8s.asm import asm_filter_deployment
from meshfilter.k8s.output import to_json, to_yaml, write_dir
from meshfilter.k8s.schema import validate_resources
from meshfilter.k8s.secret import SECRET_NAME, SECRET_NAMESPACE
from meshfilter.k8s.wasm_envoyfilter import MAX_INLINE_BYTES, code_source, wasm_envoy_filter
from meshfilter.k8s.wasmplugin import (
    FAIL_STRATEGIES,
    PHASES,
    PLUGIN_TYPES,
    PULL_POLICIES,
    TARGET_KINDS,
    plugin_url,
    target_ref,
    vm_env,
    wasm_plugin,
)
from meshfilter.util.fs import atomic_write_text

DESCRIPTION = (
    "Render the Kubernetes resources that deploy a filter: ASMFilterDeployment (Alibaba Cloud Service Mesh), "
    "Istio WasmPlugin or EnvoyFilter, or Envoy Gateway's EnvoyExtensionPolicy. Output is multi-document YAML "
    "on stdout (for kubectl apply -f -), -o json, -o FILE, or -o DIR (one file per resource, written "
    "atomically). Every resource is checked strictly against its CRD schema; --validate also runs its Envoy "
    "part through a real envoy --mode validate (the module must load). See docs/deploy.md.")


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("deploy", help="render ASMFilterDeployment, WasmPlugin, EnvoyFilter or "
                                             "EnvoyExtensionPolicy resources", description=DESCRIPTION)
    sub = p.add_subparsers(dest="deploy_command", metavar="KIND", parser_class=type(p))
    sub.required = True

    a = sub.add_parser("asm", help="ASMFilterDeployment (Alibaba Cloud Service Mesh), optionally with its pull Secret")
    _common(a, context_choices=v.PATCH_CONTEXTS)
    a.add_argument("--workload-kind", default="Deployment", help="kind of the selected workload (Deployment)")
    a.add_argument("--image", required=True, help="image reference of the Wasm filter, registry/repo:tag")
    a.add_argument("--root-id", required=True, help=f"root id of the Wasm filter, e.g. {ROOT_ID}")
    a.add_argument("--id", dest="filter_id", help="unique id of the filter (default: --name)")
    a.add_argument("--pull-secret", help="name of the pull Secret in spec.filter.imagePullOptions.pullSecret")
    _secret_flags(a, default_namespace=SECRET_NAMESPACE)
    _check_flags(a, registry=True)
    a.set_defaults(handler=cmd_asm)

    w = sub.add_parser("wasmplugin", help="Istio WasmPlugin (extensions.istio.io/v1alpha1)")
    _common(w, context_choices=v.PATCH_CONTEXTS)
    w.add_argument("--target-ref", action="append", metavar="KIND/NAME",
                   help=f"targetRefs: attach to a {', '.join(TARGET_KINDS)} instead of selecting workloads by "
                        "--label (repeatable; not with --label)")
    w.add_argument("--image", required=True,
                   help="OCI image reference (oci:// added), or an http(s):// or file:// URL")
    pin = w.add_mutually_exclusive_group()
    pin.add_argument("--pin", action="store_true",
                     help="pin the image: resolve the tag's manifest digest in the registry into url and sha256")
    pin.add_argument("--sha256", help="pin to this digest without asking the registry (64 hex)")
    w.add_argument("--root-id", help="pluginName: the root id inside the module")
    w.add_argument("--type", dest="plugin_type", choices=PLUGIN_TYPES,
                   help="HTTP (an HTTP filter, Istio's default) or NETWORK (a TCP filter)")
    w.add_argument("--match-port", action="append", type=int, metavar="N",
                   help="match.ports: only traffic on this port (repeatable)")
    w.add_argument("--env", action="append", metavar="NAME=VALUE",
                   help="vmConfig.env: a variable the module reads with WASI environ_get (repeatable)")
    w.add_argument("--env-from-host", action="append", metavar="NAME",
                   help="vmConfig.env valueFrom HOST: pass the proxy's own variable NAME to the module (repeatable)")
    w.add_argument("--phase", choices=PHASES, help="where in the filter chain (default: just before the router)")
    w.add_argument("--priority", type=int, help="order among plugins of the same phase (int32)")
    w.add_argument("--pull-secret", help="imagePullSecret: a Secret in the plugin's namespace")
    w.add_argument("--fail-strategy", choices=FAIL_STRATEGIES, help="what to do when the module fails")
    w.add_argument("--image-pull-policy", choices=PULL_POLICIES, default="IfNotPresent",
                   help="imagePullPolicy (default IfNotPresent)")
    _secret_flags(w, default_namespace=None)
    _check_flags(w, registry=True)
    w.set_defaults(handler=cmd_wasmplugin)

    e = sub.add_parser("envoyfilter", help="Istio EnvoyFilter inserting envoy.filters.http.wasm before the router")
    _common(e, context_choices=v.PATCH_CONTEXTS)
    e.add_argument("--root-id", required=True, help="root id inside the module")
    src = e.add_mutually_exclusive_group(required=True)
    src.add_argument("--module", type=Path, help="local .wasm file (embedded, or see --module-path)")
    src.add_argument("--url", help="http(s) URL Envoy fetches the module from (needs --sha256)")
    e.add_argument("--sha256", help="sha256 of the module at --url")
    e.add_argument("--module-path", help="refer to the module as this file on the proxy instead of embedding it")
    e.add_argument("--remote-cluster", help="cluster Envoy fetches --url through (default: Istio's "
                                            "outbound|PORT||HOST, needs a ServiceEntry for the host)")
    e.add_argument("--istio-version", help="only proxies of this Istio version, e.g. 1.22 (proxyVersion regex)")
    e.add_argument("--priority", type=int, help="EnvoyFilter priority (int32)")
    e.add_argument("--fail-open", action="store_true", help="let requests pass when the module fails")
    e.add_argument("--validate", action="store_true",
                   help="check the filter in a real Envoy (--mode validate); the module must load")
    e.set_defaults(handler=cmd_envoyfilter)

    g = sub.add_parser("envoy-gateway", help="Envoy Gateway EnvoyExtensionPolicy (gateway.envoyproxy.io/v1alpha1): "
                                             "Wasm and/or Lua on a Gateway or route")
    _register_envoy_gateway(g)


def _common(p: argparse.ArgumentParser, *, context_choices: tuple[str, ...]) -> None:
    p.add_argument("--name", required=True, help="resource name (DNS-1123)")
    p.add_argument("--namespace", help="resource namespace (left out when not given: kubectl -n decides)")
    p.add_argument("--label", action="append", metavar="K=V", help="workload label to select (repeatable)")
    p.add_argument("--patch-context", default="SIDECAR_OUTBOUND",
                   help=f"{'|'.join(context_choices)} (default SIDECAR_OUTBOUND)")
    p.add_argument("--parameters", metavar="JSON", help="filter configuration, a JSON object")
    p.add_argument("--filter", dest="filter_kind", choices=v.FILTER_KINDS,
                   help=f"which checks --parameters gets (default: propagate-header when the root id is {ROOT_ID})")
    p.add_argument("-o", "--output", default=None,
                   help="'yaml' or '-' (stdout, default), 'json' (stdout), FILE.yaml/FILE.json (one file), "
                        "or a directory (one file per resource)")


def _secret_flags(p: argparse.ArgumentParser, *, default_namespace: str | None) -> None:
    p.add_argument("--with-pull-secret", action="store_true",
                   help="also emit the kubernetes.io/dockerconfigjson Secret with the docker-config "
                        "credentials of the image's registry host (only that host)")
    p.add_argument("--docker-config", type=Path, help="docker config.json to read (default: $DOCKER_CONFIG "
                                                      "or ~/.docker/config.json)")
    p.add_argument("--secret-namespace", default=default_namespace,
                   help=f"namespace of the Secret (default: {default_namespace or 'the resource namespace'})")


def _check_flags(p: argparse.ArgumentParser, *, registry: bool) -> None:
    p.add_argument("--validate", action="store_true",
                   help="check the filter in a real Envoy (--mode validate); the module must load")
    p.add_argument("--module", type=Path, help="with --validate: use this local module instead of pulling the image")
    if registry:
        p.add_argument("--plain-http", action="store_true", help="talk HTTP to the registry (--pin, --validate)")
        p.add_argument("--insecure", action="store_true", help="do not verify the registry's TLS certificate")
        p.add_argument("--ca-file", type=Path, help="CA bundle for the registry's TLS certificate")


# --- handlers ---------------------------------------------------------------------------------

def _registry_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    kw: dict[str, Any] = {"plain_http": args.plain_http, "insecure": args.insecure}
    if args.ca_file:
        kw["ca_file"] = str(args.ca_file)
    return kw


def _pin_kwargs(args: argparse.Namespace, image: str) -> dict[str, Any]:
    """resolve_digest reads the docker config itself (--docker-config, else the default one)."""
    kw = _registry_kwargs(args)
    if args.docker_config:
        kw["docker_config"] = str(args.docker_config)
    return {**kw, "report": lambda note: print(f"meshfilter: note: {note}", file=sys.stderr)}


def _read_module(path: Path, field: str = "module") -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}", where=field, hint="give an existing .wasm file") \
            from None


def _inputs(args: argparse.Namespace, *, labels_required: bool) -> tuple[str, dict[str, str], str,
                                                                        v.FilterParameters]:
    """The shared inputs, each parsed once: name, labels, patch context, parameters."""
    name = v.check_dns1123_subdomain(args.name, field="name")
    if args.namespace is not None:
        v.check_dns1123_label(args.namespace, field="namespace")
    labels = v.check_labels(args.label, field="label", required=labels_required)
    context = v.check_patch_context(args.patch_context)
    root_id = getattr(args, "root_id", None)
    if root_id is not None:
        v.check_root_id(root_id)
    params = v.parse_parameters(args.parameters, propagate_header=v.is_propagate(root_id, args.filter_kind))
    return name, labels, context, params


def _secret(args: argparse.Namespace, image: str, name: str, namespace: str | None) -> dict[str, Any]:
    from meshfilter.k8s.secret import pull_secret_for_image
    from meshfilter.oras.reference import parse_reference

    v.check_dns1123_subdomain(name, field="pull_secret")
    if namespace:
        v.check_dns1123_label(namespace, field="secret_namespace")
    secret, has_credentials = pull_secret_for_image(image, docker_config=args.docker_config, name=name,
                                                    namespace=namespace)
    if not has_credentials:
        host = parse_reference(image, where="image").registry
        print(f"meshfilter: warning: no docker-config credentials for {host}; the Secret has none "
              "(fine for a public registry)", file=sys.stderr)
    return secret


def _emit(args: argparse.Namespace, docs: list[dict[str, Any]]) -> int:
    validate_resources(docs)
    out = args.output
    if out in (None, "-", "yaml"):
        sys.stdout.write(to_yaml(docs))
    elif out == "json":
        sys.stdout.write(to_json(docs))
    elif out.endswith((".yaml", ".yml", ".json")):  # one file holding every resource
        text = to_json(docs) if out.endswith(".json") else to_yaml(docs)
        secret = any(d.get("kind") == "Secret" for d in docs)
        if not Path(out).parent.is_dir():  # deploy writes folders of resources anyway: create, and say so
            Path(out).parent.mkdir(parents=True)
            print(f"created folder {Path(out).parent}", file=sys.stderr)
        atomic_write_text(Path(out), text, mode=0o600 if secret else 0o644, parents=False, field="output")
        print(f"wrote {out}", file=sys.stderr)
    else:
        for path in write_dir(docs, Path(out)):
            print(f"wrote {path}", file=sys.stderr)
    sys.stdout.flush()
    return 0


def _envoy_check(args: argparse.Namespace, doc: dict[str, Any], module: bytes | None) -> None:
    from meshfilter.k8s.envoy_check import check_resource, pull_oci_module

    validate_resources([doc])  # the schema first: Envoy only sees well-formed resources
    kw = _registry_kwargs(args) if hasattr(args, "plain_http") else {}
    if getattr(args, "docker_config", None):
        kw["docker_config"] = str(args.docker_config)
    check_resource(doc, module=module, oci_fetcher=lambda ref: pull_oci_module(ref, **kw))
    print(f"meshfilter: {doc['kind']}/{doc['metadata']['name']}: Envoy loaded the filter (envoy --mode validate)",
          file=sys.stderr)


def _finish(args: argparse.Namespace, doc: dict[str, Any], image: str | None, secret_field: str) -> int:
    """The resource, its pull Secret with ``--with-pull-secret`` (in the resource's namespace unless
    ``--secret-namespace``), the Envoy check with ``--validate``, then the output."""
    docs = [doc]
    if args.with_pull_secret:
        if not args.pull_secret or image is None:
            raise UsageError(f"`with_pull_secret` needs `pull_secret` NAME ({secret_field})",
                             where="with_pull_secret", hint="add `pull_secret` wasm-pull")
        docs.append(_secret(args, image, args.pull_secret, args.secret_namespace or args.namespace))
    if args.validate:
        _envoy_check(args, doc, _read_module(args.module) if args.module else None)
    return _emit(args, docs)


def cmd_asm(args: argparse.Namespace) -> int:
    from meshfilter.oras.reference import parse_reference

    name, labels, context, params = _inputs(args, labels_required=True)
    parse_reference(args.image, where="image")
    if args.pull_secret:
        v.check_dns1123_subdomain(args.pull_secret, field="pull_secret")
    if args.filter_id:
        v.check_dns1123_subdomain(args.filter_id, field="filter_id")
    if not args.workload_kind[:1].isupper() or not args.workload_kind.isalnum():
        raise UsageError(f"{args.workload_kind!r} is not a workload kind", where="workload_kind",
                         hint="for example Deployment, StatefulSet or DaemonSet")
    doc = asm_filter_deployment(name, labels=labels, patch_context=context, image=args.image,
                                root_id=args.root_id, filter_id=args.filter_id, parameters=params.text,
                                workload_kind=args.workload_kind, namespace=args.namespace,
                                pull_secret=args.pull_secret)
    docs = [doc]
    if args.with_pull_secret:
        docs.append(_secret(args, args.image, args.pull_secret or SECRET_NAME, args.secret_namespace))
    if args.validate:
        _envoy_check(args, doc, _read_module(args.module) if args.module else None)
    return _emit(args, docs)


def _wasmplugin_extras(args: argparse.Namespace, labels: dict[str, str]) -> dict[str, Any]:
    """targetRefs, match ports, type and vmConfig.env, checked as Istio's schema and CEL rules demand."""
    refs = v.parse_target_refs(args.target_ref, TARGET_KINDS)
    if refs and labels:
        raise UsageError("`target_ref` and `label` cannot be combined: a WasmPlugin has either targetRefs or "
                         "a selector (Istio's rule)", where="target_ref",
                         hint="attach to the Gateway with `target_ref`, or select workloads with `label`")
    ports: list[int] = []
    for port in args.match_port or ():
        from meshfilter.k8s.checks import check_port

        check_port(port, field="match_port")
        if port in ports:
            raise UsageError(f"port {port} is given twice", where="match_port", hint="give each port once")
        ports.append(port)
    inline = v.parse_env(args.env)
    host = list(args.env_from_host or ())
    seen: set[str] = set()
    for field, name, value in [*(("env", n, val) for n, val in inline), *(("env_from_host", n, "") for n in host)]:
        if not name or len(name) > 256 or "\0" in name or "=" in name:
            raise UsageError(f"{name!r} is not an environment variable name", where=field,
                             hint="use 1 to 256 characters without '=' or NUL, e.g. LOG_FORMAT")
        if len(value) > 2048:
            raise UsageError(f"the value of {name} is {len(value)} characters, over Istio's 2048", where=field,
                             hint="pass a shorter value, or put it into `parameters`")
        if name in seen:
            raise UsageError(f"{name!r} is given twice", where=field,
                             hint="give each variable once, inline (`env`) or from the host (`env_from_host`)")
        seen.add(name)
    return {"target_refs": [target_ref(k, n, group=g) for g, k, n in refs], "match_ports": ports,
            "plugin_type": args.plugin_type, "env": vm_env(inline, host)}


def cmd_wasmplugin(args: argparse.Namespace) -> int:
    from meshfilter.oras.reference import parse_reference

    name, labels, context, params = _inputs(args, labels_required=False)
    v.check_int32(args.priority)
    extras = _wasmplugin_extras(args, labels)
    is_oci = not args.image.startswith(("http://", "https://", "file://"))
    image = args.image.removeprefix("oci://")
    if is_oci:
        parse_reference(image, where="image")
    elif args.pin or args.with_pull_secret:
        raise UsageError("`pin` and `with_pull_secret` need an OCI image, not a URL", where="image",
                         hint="give registry/repository:tag")
    if args.pull_secret:
        v.check_dns1123_subdomain(args.pull_secret, field="pull_secret")
    sha = v.check_sha256(args.sha256) if args.sha256 else None
    if args.pin:
        from meshfilter.oras.client import resolve_digest

        sha = v.check_sha256(resolve_digest(image, **_pin_kwargs(args, image)), field="pin")
    url = plugin_url(args.image, digest=f"sha256:{sha}" if sha and is_oci else None)
    doc = wasm_plugin(name, url=url, namespace=args.namespace, labels=labels, sha256=sha,
                      image_pull_policy=args.image_pull_policy, image_pull_secret=args.pull_secret,
                      plugin_name=args.root_id, plugin_config=params.obj, phase=args.phase,
                      priority=args.priority, fail_strategy=args.fail_strategy, patch_context=context, **extras)
    return _finish(args, doc, image, "the WasmPlugin's imagePullSecret")


def cmd_envoyfilter(args: argparse.Namespace) -> int:
    name, labels, context, params = _inputs(args, labels_required=False)
    v.check_int32(args.priority)
    if args.istio_version:
        from meshfilter.k8s.envoyfilter import proxy_version_regex

        proxy_version_regex(args.istio_version)
    module: bytes | None = None
    if args.url:
        if not args.sha256:
            raise UsageError("`url` needs `sha256` so Envoy can verify the module", where="url",
                             hint="add `sha256` $(sha256sum filter.wasm | cut -d' ' -f1)")
        if not args.url.startswith(("http://", "https://")):
            raise UsageError(f"{args.url!r} is not an http(s) URL", where="url",
                             hint="use `module` for a local file")
        if args.module_path:
            raise UsageError("`module_path` goes with `module`, not `url`", where="module_path")
        code = code_source(url=args.url, sha256=v.check_sha256(args.sha256), remote_cluster=args.remote_cluster)
    else:
        if args.sha256 or args.remote_cluster:
            raise UsageError("`sha256` and `remote_cluster` go with `url`", where="sha256",
                             hint="drop them or use `url`")
        module = _read_module(args.module)
        if not module.startswith(b"\0asm"):
            raise UsageError(f"{args.module} is not a Wasm module (no \\0asm header)", where="module",
                             hint="give the .wasm file built by 'meshfilter wasm build'")
        if args.module_path:
            code = code_source(module_path=args.module_path)
        elif len(module) > MAX_INLINE_BYTES:
            raise UsageError(f"{args.module} is {len(module)} bytes, too big to embed in a resource",
                             where="module", hint="serve it and use `url`/`sha256`, or mount it and use "
                                                  "`module_path`")
        else:
            code = code_source(module=module)
    doc = wasm_envoy_filter(name, patch_context=context, code=code, root_id=args.root_id,
                            configuration=params.text or "", namespace=args.namespace, labels=labels,
                            istio_version=args.istio_version, priority=args.priority, fail_open=args.fail_open)
    if args.validate:
        _envoy_check(args, doc, module)
    return _emit(args, [doc])


# --- Envoy Gateway ------------------------------------------------------------------------------

def _register_envoy_gateway(g: argparse.ArgumentParser) -> None:
    from meshfilter.cli._rules import add_rule_flags
    from meshfilter.filters.tagging import LITERAL_MATCHERS

    g.add_argument("--name", required=True, help="resource name (DNS-1123)")
    g.add_argument("--namespace", help="resource namespace (left out when not given: kubectl -n decides)")
    g.add_argument("--target-ref", action="append", required=True, metavar="KIND/NAME",
                   help=f"targetRefs: the {', '.join(eg.TARGET_KINDS)} to attach to (repeatable)")
    wasm = g.add_argument_group("Wasm (one of --image or --url)")
    src = wasm.add_mutually_exclusive_group()
    src.add_argument("--image", help="OCI image of the module, registry/repo:tag (code.type Image)")
    src.add_argument("--url", help="http(s) URL of the module, fetched by Envoy Gateway (code.type HTTP; "
                                   "needs --sha256)")
    wasm.add_argument("--sha256", help="sha256 of the module at --url, or the image digest for --image (64 hex)")
    wasm.add_argument("--root-id", help="rootID: the root id inside the module")
    wasm.add_argument("--parameters", metavar="JSON", help="config: the plugin configuration, a JSON object")
    wasm.add_argument("--filter", dest="filter_kind", choices=v.FILTER_KINDS,
                      help=f"which checks --parameters gets (default: propagate-header when the root id is {ROOT_ID})")
    wasm.add_argument("--env-from-host", action="append", metavar="NAME",
                      help="env.hostKeys: pass the proxy's own variable NAME to the module (repeatable)")
    wasm.add_argument("--fail-open", action="store_true", help="failOpen: let requests pass when the module fails")
    wasm.add_argument("--pull-secret", help="pullSecretRef: a Secret in the policy's namespace (--image)")
    wasm.add_argument("--image-pull-policy", choices=eg.PULL_POLICIES, help="pullPolicy (--image)")
    _secret_flags(g, default_namespace=None)
    lua = g.add_argument_group("Lua (--lua FILE, or the tagging rule flags below)")
    lua.add_argument("--lua", type=Path, metavar="FILE", help="a Lua script to run inline (lua[].inline)")
    add_rule_flags(g, LITERAL_MATCHERS)
    _check_flags(g, registry=True)
    g.add_argument("-o", "--output", default=None,
                   help="'yaml' or '-' (stdout, default), 'json' (stdout), FILE.yaml/FILE.json (one file), "
                        "or a directory (one file per resource)")
    g.set_defaults(handler=cmd_envoy_gateway)


def _tagging_given(args: argparse.Namespace) -> bool:
    matchers = any(getattr(args, f"m_{k.replace('-', '_')}", None) is not None for k in args._value_matchers)
    return bool(args.rules or args.header or matchers or args.present or args.absent or args.set or args.else_)


def _lua_script(args: argparse.Namespace) -> str | None:
    if args.lua and _tagging_given(args):
        raise UsageError("`lua` and the tagging rule flags cannot be combined", where="lua",
                         hint="give a script with `lua`, or rules with `rules` (or the short form)")
    if args.lua:
        try:
            return Path(args.lua).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"cannot read {args.lua}: {getattr(exc, 'strerror', None) or type(exc).__name__}",
                             where="lua", hint="give an existing Lua file") from None
    if _tagging_given(args):
        from meshfilter.cli._rules import ruleset_from_args
        from meshfilter.lua.codegen import compile_rules

        return compile_rules(ruleset_from_args(args))  # LuaJIT-checked
    return None


def cmd_envoy_gateway(args: argparse.Namespace) -> int:
    from meshfilter.oras.reference import parse_reference

    name = v.check_dns1123_subdomain(args.name, field="name")
    if args.namespace is not None:
        v.check_dns1123_label(args.namespace, field="namespace")
    refs = v.parse_target_refs(args.target_ref, eg.TARGET_KINDS)
    script = _lua_script(args)
    wasm: list[dict[str, Any]] = []
    image: str | None = None
    if args.image or args.url:
        if args.root_id is not None:
            v.check_root_id(args.root_id)
        params = v.parse_parameters(args.parameters, propagate_header=v.is_propagate(args.root_id, args.filter_kind))
        sha = v.check_sha256(args.sha256) if args.sha256 else None
        keys = list(args.env_from_host or ())
        for key in keys:
            if not key or "=" in key or "\0" in key:
                raise UsageError(f"{key!r} is not an environment variable name", where="env_from_host",
                                 hint="use a name without '=' or NUL, e.g. LOG_FORMAT")
        if args.url:
            if not args.url.startswith(("http://", "https://")):
                raise UsageError(f"{args.url!r} is not an http(s) URL", where="url", hint="use `image` for OCI")
            if not sha:
                raise UsageError("`url` needs `sha256` so the module is verified", where="url",
                                 hint="add `sha256` $(sha256sum filter.wasm | cut -d' ' -f1)")
            if args.pull_secret or args.with_pull_secret or args.image_pull_policy:
                raise UsageError("`pull_secret`, `with_pull_secret` and `image_pull_policy` go with `image`",
                                 where="url", hint="drop them for an HTTP URL")
            code = eg.http_code(args.url, sha256=sha)
        else:
            image = args.image.removeprefix("oci://")
            parse_reference(image, where="image")
            if args.pull_secret:
                v.check_dns1123_subdomain(args.pull_secret, field="pull_secret")
            code = eg.image_code(image, sha256=sha, pull_secret=args.pull_secret, pull_policy=args.image_pull_policy)
        wasm.append(eg.wasm_extension(code, root_id=args.root_id, config=params.obj, fail_open=args.fail_open,
                                      host_env_keys=keys))
    else:
        for flag in ("sha256", "root_id", "parameters", "env_from_host", "pull_secret", "image_pull_policy"):
            if getattr(args, flag):
                raise UsageError(f"`{flag}` is for the Wasm module, and no module is given", where=flag,
                                 hint="add `image` or `url`, or drop it")
        if args.fail_open or args.with_pull_secret:
            raise UsageError("`fail_open` and `with_pull_secret` are for the Wasm module, and no module is given",
                             where="fail_open" if args.fail_open else "with_pull_secret", hint="add `image` or `url`")
    if not wasm and script is None:
        raise UsageError("nothing to deploy: give a Wasm module or a Lua filter",
                         where="meshfilter deploy envoy-gateway",
                         hint="add `image` REF or `url` URL with `sha256`, or `lua` FILE, or tagging rules (`rules`)")
    lua = [eg.lua_extension(script)] if script is not None else []
    doc = eg.envoy_extension_policy(name, namespace=args.namespace, wasm=wasm, lua=lua,
                                    target_refs=[eg.target_ref(k, n) for _, k, n in refs])
    return _finish(args, doc, image, "the policy's pullSecretRef")
