"""The EnvoyFilter flags shared by `meshfilter lua tag` and `meshfilter lua build`."""

from __future__ import annotations

import argparse
from typing import Any

from meshfilter.cli.deploy_checks import check_labels
from meshfilter.k8s import lua_envoyfilter as lef
from meshfilter.k8s.checks import PATCH_CONTEXTS


def add_envoyfilter_flags(group: Any, *, default_name: str | None) -> None:
    """The EnvoyFilter flags of `lua tag` and `lua build` (``default_name`` None: the filter's own name)."""
    group.add_argument("--name", default=default_name,
                       help=f"EnvoyFilter name (default {default_name or 'the filter class in kebab-case'})")
    group.add_argument("--namespace", default=lef.DEFAULT_NAMESPACE,
                       help=f"EnvoyFilter namespace (default {lef.DEFAULT_NAMESPACE})")
    group.add_argument("--selector", action="append", metavar="KEY=VALUE",
                       help="workloadSelector label (repeatable; default istio=ingressgateway)")
    group.add_argument("--context", default=lef.DEFAULT_CONTEXT,
                       help=f"patch context: {', '.join(PATCH_CONTEXTS)} (default {lef.DEFAULT_CONTEXT})")
    group.add_argument("--istio-version", metavar="X.Y[.Z]", help="only proxies of this Istio version (proxyVersion)")
    group.add_argument("--priority", type=int, help="EnvoyFilter priority (int32)")


def envoyfilter_from_args(script: str, args: argparse.Namespace, *, default_name: str = lef.DEFAULT_NAME) -> Any:
    selector = check_labels(args.selector, field="selector") if args.selector else None
    return lef.lua_envoy_filter(script, name=args.name or default_name, namespace=args.namespace, selector=selector,
                                context=args.context, istio_version=args.istio_version, priority=args.priority)
