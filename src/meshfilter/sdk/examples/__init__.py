"""Example filters, shipped and tested on every backend (see docs/sdk.md).

Each module holds one filter class; :data:`EXAMPLES` maps a short name to ``(module, class, config)``
with a configuration it runs with.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

# name -> (module file, class name, an example configuration)
EXAMPLES: dict[str, tuple[str, str, dict[str, Any]]] = {
    "propagate-header": ("propagate_header.py", "PropagateHeader",
                         {"head_tag_name": "route-v", "head_tag_value": "hello2v2"}),
    "gateway-tag": ("gateway_tag.py", "GatewayTag", {}),
    "api-key": ("api_key.py", "ApiKeyCheck", {"keys": ["k-123", "k-456"]}),
    "path-redirect": ("path_redirect.py", "PathRedirect", {"from_prefix": "/old/", "to_prefix": "/new/"}),
    "error-stamp": ("error_stamp.py", "ErrorStamp", {}),
    "header-rename": ("header_rename.py", "HeaderRename", {"from_header": "x-old-id", "to_header": "x-id"}),
}


def path(name: str) -> Path:
    """The source file of example ``name``."""
    return HERE / EXAMPLES[name][0]


def load(name: str) -> type:
    """The filter class of example ``name``."""
    import importlib

    module = importlib.import_module(f"meshfilter.sdk.examples.{EXAMPLES[name][0][:-3]}")
    cls: type = getattr(module, EXAMPLES[name][1])
    return cls
