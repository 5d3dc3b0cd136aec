"""``meshfilter deploy asm|wasmplugin|envoyfilter``: render the deployment resources of a Wasm filter.

Output: multi-document YAML on stdout (``kubectl apply -f -``), ``-o json``, or ``-o DIR`` (one
file per resource, written atomically). ``--validate`` runs the resource's Envoy part through a real
``envoy --mode validate`` (the module must load).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from meshfilter.errors import UsageError
from meshfilter.filters.propagate import ROOT_ID
from meshfilter.k8s import validate as v
from meshfilter.k8s.asm import asm_filter_deployment
from meshfilter.k8s.output import to_json, to_yaml, write_dir
from meshfilter.k8s.schema import validate_resources
from meshfilter.k8s.secret import SECRET_NAME, SECRET_NAMESPACE
from meshfilter.k8s.wasm_envoyfilter import MAX_INLINE_BYTES, code_source, wasm_envoy_filter
from meshfilter.k8s.wasmplugin import FAIL_STRATEGIES, PHASES, PULL_POLICIES, plugin_url, wasm_plugin
from meshfilter.util.fs import atomic_write_text


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("deploy", help="render ASMFilterDeployment, WasmPlugin or EnvoyFilter resources",
                              description=__doc__)
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
    w.add_argument("--image", required=True,
                   help="OCI image reference (oci:// added), or an http(s):// or file:// URL")
    pin = w.add_mutually_exclusive_group()
    pin.add_argument("--pin", action="store_true",
                     help="pin the image: resolve the tag's manifest digest in the registry into url and sha256")
    pin.add_argument("--sha256", help="pin to this digest without asking the registry (64 hex)")
    w.add_argument("--root-id", help="pluginName: the root id inside the module")
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
    return {**_registry_kwargs(args), "docker_config": str(args.docker_config) if args.docker_config else None,
            "report": lambda note: print(f"meshfilter: note: {note}", file=sys.stderr)}


def _read_module(path: Path, flag: str = "--module") -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}", where=flag, hint="give an existing .wasm file") \
            from None


def _inputs(args: argparse.Namespace, *, labels_required: bool) -> tuple[str, dict[str, str], str, dict[str, Any]]:
    name = v.check_dns1123_subdomain(args.name, flag="--name")
    if args.namespace is not None:
        v.check_dns1123_label(args.namespace, flag="--namespace")
    labels = v.check_labels(args.label, flag="--label", required=labels_required)
    context = v.check_patch_context(args.patch_context)
    root_id = getattr(args, "root_id", None)
    if root_id is not None:
        v.check_root_id(root_id)
    params = v.check_parameters(args.parameters, propagate_header=v.is_propagate(root_id, args.filter_kind))
    return name, labels, context, params


def _secret(args: argparse.Namespace, image: str, name: str, namespace: str | None) -> dict[str, Any]:
    from meshfilter.k8s.secret import pull_secret_for_image
    from meshfilter.oras.reference import parse_reference

    v.check_dns1123_subdomain(name, flag="--pull-secret")
    if namespace:
        v.check_dns1123_label(namespace, flag="--secret-namespace")
    secret, has_credentials = pull_secret_for_image(image, docker_config=args.docker_config, name=name,
                                                    namespace=namespace)
    if not has_credentials:
        host = parse_reference(image, where="--image").registry
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
        atomic_write_text(Path(out), text, mode=0o600 if secret else 0o644)
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


def cmd_asm(args: argparse.Namespace) -> int:
    from meshfilter.oras.reference import parse_reference

    name, labels, context, _ = _inputs(args, labels_required=True)
    parse_reference(args.image, where="--image")
    if args.pull_secret:
        v.check_dns1123_subdomain(args.pull_secret, flag="--pull-secret")
    if args.filter_id:
        v.check_dns1123_subdomain(args.filter_id, flag="--id")
    if not args.workload_kind[:1].isupper() or not args.workload_kind.isalnum():
        raise UsageError(f"{args.workload_kind!r} is not a workload kind", where="--workload-kind",
                         hint="for example Deployment, StatefulSet or DaemonSet")
    doc = asm_filter_deployment(name, labels=labels, patch_context=context, image=args.image,
                                root_id=args.root_id, filter_id=args.filter_id, parameters=args.parameters,
                                workload_kind=args.workload_kind, namespace=args.namespace,
                                pull_secret=args.pull_secret)
    docs = [doc]
    if args.with_pull_secret:
        docs.append(_secret(args, args.image, args.pull_secret or SECRET_NAME, args.secret_namespace))
    if args.validate:
        _envoy_check(args, doc, _read_module(args.module) if args.module else None)
    return _emit(args, docs)


def cmd_wasmplugin(args: argparse.Namespace) -> int:
    from meshfilter.oras.reference import parse_reference

    name, labels, context, params = _inputs(args, labels_required=False)
    v.check_priority(args.priority)
    is_oci = not args.image.startswith(("http://", "https://", "file://"))
    image = args.image.removeprefix("oci://")
    if is_oci:
        parse_reference(image, where="--image")
    elif args.pin or args.with_pull_secret:
        raise UsageError("--pin and --with-pull-secret need an OCI image, not a URL", where="--image",
                         hint="give registry/repository:tag")
    if args.pull_secret:
        v.check_dns1123_subdomain(args.pull_secret, flag="--pull-secret")
    sha = v.check_sha256(args.sha256) if args.sha256 else None
    if args.pin:
        from meshfilter.oras.client import resolve_digest

        sha = v.check_sha256(resolve_digest(image, **_pin_kwargs(args, image)), flag="--pin")
    url = plugin_url(args.image, digest=f"sha256:{sha}" if sha and is_oci else None)
    doc = wasm_plugin(name, url=url, namespace=args.namespace, labels=labels, sha256=sha,
                      image_pull_policy=args.image_pull_policy, image_pull_secret=args.pull_secret,
                      plugin_name=args.root_id, plugin_config=params, phase=args.phase,
                      priority=args.priority, fail_strategy=args.fail_strategy, patch_context=context)
    docs = [doc]
    if args.with_pull_secret:
        if not args.pull_secret:
            raise UsageError("--with-pull-secret needs --pull-secret NAME (the WasmPlugin's imagePullSecret)",
                             where="--with-pull-secret", hint="add --pull-secret wasm-pull")
        docs.append(_secret(args, image, args.pull_secret, args.secret_namespace or args.namespace))
    if args.validate:
        _envoy_check(args, doc, _read_module(args.module) if args.module else None)
    return _emit(args, docs)


def cmd_envoyfilter(args: argparse.Namespace) -> int:
    name, labels, context, _ = _inputs(args, labels_required=False)
    v.check_priority(args.priority)
    if args.istio_version:
        from meshfilter.k8s.envoyfilter import proxy_version_regex

        proxy_version_regex(args.istio_version)
    module: bytes | None = None
    if args.url:
        if not args.sha256:
            raise UsageError("--url needs --sha256 so Envoy can verify the module", where="--url",
                             hint="add --sha256 $(sha256sum filter.wasm | cut -d' ' -f1)")
        if not args.url.startswith(("http://", "https://")):
            raise UsageError(f"{args.url!r} is not an http(s) URL", where="--url",
                             hint="use --module for a local file")
        if args.module_path:
            raise UsageError("--module-path goes with --module, not --url", where="--module-path")
        code = code_source(url=args.url, sha256=v.check_sha256(args.sha256), remote_cluster=args.remote_cluster)
    else:
        if args.sha256 or args.remote_cluster:
            raise UsageError("--sha256 and --remote-cluster go with --url", where="--sha256",
                             hint="drop them or use --url")
        module = _read_module(args.module)
        if not module.startswith(b"\0asm"):
            raise UsageError(f"{args.module} is not a Wasm module (no \\0asm header)", where="--module",
                             hint="give the .wasm file built by 'meshfilter wasm build'")
        if args.module_path:
            code = code_source(module_path=args.module_path)
        elif len(module) > MAX_INLINE_BYTES:
            raise UsageError(f"{args.module} is {len(module)} bytes, too big to embed in a resource",
                             where="--module", hint="serve it and use --url/--sha256, or mount it and use "
                                                    "--module-path")
        else:
            code = code_source(module=module)
    doc = wasm_envoy_filter(name, patch_context=context, code=code, root_id=args.root_id,
                            configuration=args.parameters or "", namespace=args.namespace, labels=labels,
                            istio_version=args.istio_version, priority=args.priority, fail_open=args.fail_open)
    if args.validate:
        _envoy_check(args, doc, module)
    return _emit(args, [doc])
