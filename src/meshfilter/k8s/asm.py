"""ASMFilterDeployment (``istio.alibabacloud.com/v1beta1``): the resource ASM turns into an
EnvoyFilter plus the Wasm module pulled into its cache (seed section 2.2). Pure.

The key order is the seed's, so the seed's hello1/hello2 resources come out field for field.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from meshfilter.k8s.envoyfilter import metadata

API_VERSION = "istio.alibabacloud.com/v1beta1"
KIND = "ASMFilterDeployment"


def asm_filter_deployment(name: str, *, labels: Mapping[str, str], patch_context: str, image: str,
                          root_id: str, filter_id: str | None = None, parameters: str | None = None,
                          workload_kind: str = "Deployment", namespace: str | None = None,
                          pull_secret: str | None = None) -> dict[str, Any]:
    """The ASMFilterDeployment. ``parameters`` is kept verbatim (a JSON string, as in the seed);
    ``filter_id`` defaults to ``name``; ``pull_secret`` names the Secret in
    ``spec.filter.imagePullOptions.pullSecret``."""
    filt: dict[str, Any] = {"patchContext": patch_context}
    if parameters is not None:
        filt["parameters"] = parameters
    filt["image"] = image
    filt["rootID"] = root_id
    filt["id"] = filter_id or name
    if pull_secret:
        filt["imagePullOptions"] = {"pullSecret": pull_secret}
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": metadata(name, namespace=namespace),
        "spec": {"workload": {"kind": workload_kind, "labels": dict(labels)}, "filter": filt},
    }
