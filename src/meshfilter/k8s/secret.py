"""The image pull Secret (``kubernetes.io/dockerconfigjson``).

ASM's Wasm cache reads a Secret named ``asmwasm-cache`` in ``istio-system``; Istio's WasmPlugin
names one in its own namespace (``imagePullSecret``). The Secret holds the docker-config
credentials of ONE registry host: the host of the image reference. Other hosts' entries of the
local docker config never leak into it.

:func:`pull_secret` is pure; :func:`pull_secret_for_image` reads the docker config (through
:mod:`meshfilter.oras.auth`, credential helpers resolved).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from meshfilter.k8s.envoyfilter import metadata

SECRET_NAME = "asmwasm-cache"
SECRET_NAMESPACE = "istio-system"
SECRET_TYPE = "kubernetes.io/dockerconfigjson"
DATA_KEY = ".dockerconfigjson"
# the fields of an auths entry that the Secret may carry (kubectl create secret docker-registry)
DOCKER_HUB_KEY = "https://index.docker.io/v1/"
ENTRY_FIELDS = ("username", "password", "auth", "identitytoken", "registrytoken")


def docker_config_json(host: str, entry: Mapping[str, Any] | None) -> dict[str, Any]:
    """``{"auths": {host: entry}}`` for one host (``{"auths": {}}`` without credentials)."""
    if not entry:
        return {"auths": {}}
    if host == "docker.io":  # the key Docker and the kubelet use for Docker Hub
        host = DOCKER_HUB_KEY
    clean = {k: entry[k] for k in ENTRY_FIELDS if k in entry and entry[k]}
    if "auth" not in clean and "username" in clean and "password" in clean:
        clean["auth"] = base64.b64encode(f"{clean['username']}:{clean['password']}".encode()).decode()
    return {"auths": {host: clean}}


def pull_secret(config: Mapping[str, Any], *, name: str = SECRET_NAME,
                namespace: str | None = SECRET_NAMESPACE) -> dict[str, Any]:
    """The Secret resource for a docker config dict (serialized compactly, keys sorted)."""
    raw = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata(name, namespace=namespace),
        "type": SECRET_TYPE,
        "data": {DATA_KEY: base64.b64encode(raw).decode()},
    }


def pull_secret_for_image(image: str, *, docker_config: Path | None = None, name: str = SECRET_NAME,
                          namespace: str | None = SECRET_NAMESPACE) -> tuple[dict[str, Any], bool]:
    """The Secret for the registry host of ``image`` and whether credentials were found."""
    from meshfilter.oras.auth import auths_entry_for_host
    from meshfilter.oras.reference import parse_reference

    host = parse_reference(image, where="image").registry
    entry = auths_entry_for_host(host, docker_config_path=docker_config)
    config = docker_config_json(host, entry)
    return pull_secret(config, name=name, namespace=namespace), bool(config["auths"])


def decode(secret: Mapping[str, Any]) -> dict[str, Any]:
    """The docker config held by a Secret built here (for tests and inspection)."""
    result: dict[str, Any] = json.loads(base64.b64decode(secret["data"][DATA_KEY]))
    return result
