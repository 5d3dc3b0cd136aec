"""The HTTP filters the demo installs, each taken from the project's own artifacts.

- **propagate-header** (A/B demo): the seed's two ASMFilterDeployments (hello1 and hello2), rendered
  by :mod:`meshfilter.k8s.asm` from the seed's ``meshfilter deploy asm`` flags, are the single
  source of truth. From each resource we read ``spec.workload.labels`` (which workloads),
  ``spec.filter.patchContext``, ``spec.filter.parameters`` and ``spec.filter.rootID``; the module
  itself is built by :func:`meshfilter.wasm.build_propagate_header` and placed inline in the
  sidecar's bootstrap (so no file has to be shared with a container).
- **gateway tagging** (canary demo): the seed's iPhone13 rule set
  (:func:`meshfilter.filters.tagging.seed_ruleset`) compiled to Lua by :mod:`meshfilter.lua`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from meshfilter.demo.mesh import WorkloadFilter
from meshfilter.envoy import bootstrap as bs
from meshfilter.filters.propagate import parse_config

# The seed's `meshfilter deploy asm` flags for its two resources (section 2.2, step 3).
SEED_IMAGE = "wasm-repo-registry.cn-beijing.cr.aliyuncs.com/asm_wasm/propagate_header:0.0.1"
SEED_ASM_FLAGS: dict[str, dict[str, Any]] = {
    "hello1": {
        "name": "hello1-propagate-header",
        "workload_kind": "Deployment",
        "labels": {"app": "hello1-deploy-v2", "version": "v2"},
        "patch_context": "SIDECAR_OUTBOUND",
        "parameters": '{"head_tag_name": "route-v", "head_tag_value": "hello2v2"}',
        "image": SEED_IMAGE,
        "root_id": "propaganda_filter_root",
        "id": "hello1-propagate-header",
    },
    "hello2": {
        "name": "hello2-propagate-header",
        "workload_kind": "Deployment",
        "labels": {"app": "hello2-deploy-v2", "version": "v2"},
        "patch_context": "SIDECAR_OUTBOUND",
        "parameters": '{"head_tag_name": "route-v", "head_tag_value": "hello3v2"}',
        "image": SEED_IMAGE,
        "root_id": "propaganda_filter_root",
        "id": "hello2-propagate-header",
    },
}


def seed_filter_deployments(only: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """The ASMFilterDeployment resources ``meshfilter deploy asm`` emits for the seed's hello1 and
    hello2 (or only those named in ``only``), as dicts."""
    names = list(SEED_ASM_FLAGS) if not only else list(only)
    out = []
    for key in names:
        if key not in SEED_ASM_FLAGS:
            from meshfilter.errors import UsageError

            raise UsageError(f"no seed ASMFilterDeployment for {key!r}", where="only",
                             hint=f"choose from {', '.join(SEED_ASM_FLAGS)}")
        out.append(_render_asm(SEED_ASM_FLAGS[key]))
    from meshfilter.k8s.schema import validate_resources

    validate_resources(out)  # the same strict schema check `meshfilter deploy asm` applies before printing
    return out


def _render_asm(flags: Mapping[str, Any]) -> dict[str, Any]:
    from meshfilter.k8s.asm import asm_filter_deployment

    return asm_filter_deployment(
        flags["name"], labels=flags["labels"], patch_context=flags["patch_context"], image=flags["image"],
        root_id=flags["root_id"], filter_id=flags["id"], parameters=flags["parameters"],
        workload_kind=flags["workload_kind"])


def propagate_http_filter(parameters: str, root_id: str, module: bytes) -> dict[str, Any]:
    """The Envoy HTTP filter running the propagate-header Wasm ``module`` (inline) with ``parameters``
    (checked first by the shared :func:`parse_config`, so a bad resource fails here, in one line)."""
    parse_config(parameters, where="spec.filter.parameters")
    return bs.wasm_filter(code=bs.wasm_code(inline=module), configuration=parameters, root_id=root_id,
                          vm_id=f"propagate-{root_id}", name="propagate-header")


def workload_filters(deployments: Sequence[Mapping[str, Any]], module: bytes) -> list[WorkloadFilter]:
    """Turn ASMFilterDeployment dicts into the per-workload filters of the mesh."""
    out = []
    for res in deployments:
        spec = res["spec"]
        flt = spec["filter"]
        out.append(WorkloadFilter(
            id=str(flt.get("id") or res["metadata"]["name"]),
            labels=dict(spec["workload"].get("labels") or {}),
            patch_context=str(flt.get("patchContext", "SIDECAR_OUTBOUND")),
            http_filter=propagate_http_filter(str(flt["parameters"]), str(flt["rootID"]), module),
            summary=f"propagate-header Wasm, root_id {flt['rootID']}, parameters {flt['parameters']}",
        ))
    return out


def build_module(root_id: str) -> bytes:
    """The propagate-header module built by meshfilter (proxy-wasm ABI 0.2.1) for ``root_id``."""
    from meshfilter.wasm.propagate import build_propagate_header

    return build_propagate_header(root_id=root_id)


def gateway_tagging_filter() -> dict[str, Any]:
    """The seed's gateway tagging rule set (iPhone13 -> version-gray, else version-base), compiled to
    Lua (and checked with LuaJIT) by meshfilter's tagging codegen."""
    from meshfilter.filters.tagging import seed_ruleset
    from meshfilter.lua.codegen import compile_rules

    return bs.lua_filter(compile_rules(seed_ruleset()))
