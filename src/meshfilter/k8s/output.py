"""Serializing resources: multi-document YAML (ready for ``kubectl apply -f -``), JSON, or one
file per resource in a directory (written atomically).

Key order is stable and readable: ``apiVersion, kind, metadata`` first, then the rest in the order
the renderer built it (``spec``, or ``type``/``data`` for a Secret), so output diffs cleanly.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from meshfilter.util.fs import atomic_write_text

HEAD_KEYS = ("apiVersion", "kind", "metadata")


def ordered(doc: Mapping[str, Any]) -> dict[str, Any]:
    """``doc`` with apiVersion, kind, metadata first (other keys keep their order)."""
    head = {k: doc[k] for k in HEAD_KEYS if k in doc}
    return {**head, **{k: v for k, v in doc.items() if k not in HEAD_KEYS}}


class _Dumper(yaml.SafeDumper):
    pass


# YAML 1.1 line breaks besides "\n": PyYAML would fold them inside plain, quoted or block scalars
# (with allow_unicode), so such strings are written double-quoted, where they are escaped.
_FOLDED_BREAKS = re.compile("[\r\x85\u2028\u2029]")


def _str_presenter(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    if _FOLDED_BREAKS.search(data):
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style='"')
    if "\n" in data:
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", data)


_Dumper.add_representer(str, _str_presenter)


def to_yaml(docs: Sequence[Mapping[str, Any]]) -> str:
    """Multi-document YAML: each document starts with ``---``."""
    parts = [yaml.dump(ordered(d), Dumper=_Dumper, sort_keys=False, default_flow_style=False,
                       allow_unicode=True, width=2**31 - 1) for d in docs]
    return "".join(f"---\n{p}" for p in parts)


def to_json(docs: Sequence[Mapping[str, Any]]) -> str:
    """One resource as a JSON object; several as a ``v1 List`` (``kubectl apply -f`` takes both)."""
    if len(docs) == 1:
        obj: Any = ordered(docs[0])
    else:
        obj = {"apiVersion": "v1", "kind": "List", "items": [ordered(d) for d in docs]}
    return json.dumps(obj, indent=2) + "\n"


def file_name(doc: Mapping[str, Any]) -> str:
    """``<kind>-<name>.yaml`` in lower case, e.g. ``wasmplugin-hello1.yaml``."""
    return f"{str(doc['kind']).lower()}-{doc['metadata']['name']}.yaml"


def write_dir(docs: Sequence[Mapping[str, Any]], directory: Path) -> list[Path]:
    """One YAML file per resource, each written atomically; Secrets are readable by the owner only."""
    paths: list[Path] = []
    for doc in docs:
        path = Path(directory) / file_name(doc)
        mode = 0o600 if doc.get("kind") == "Secret" else 0o644
        atomic_write_text(path, to_yaml([doc]), mode=mode)
        paths.append(path)
    return paths


def load_yaml(text: str) -> list[dict[str, Any]]:
    """Parse multi-document YAML (empty documents dropped)."""
    return [d for d in yaml.safe_load_all(text) if d is not None]
