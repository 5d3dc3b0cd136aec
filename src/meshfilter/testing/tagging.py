"""The shared differential test vectors of header tagging (``tests/data/tagging_vectors.yaml``).

Every backend column (Python reference, Lua in LuaJIT, Lua in Envoy, Wasm emulator, Wasm in Envoy)
runs each :class:`Vector` and must produce its hand-written ``expect``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from meshfilter.filters.tagging import Header, RuleSet, from_dict, parse_yaml


@dataclass(frozen=True)
class Vector:
    """One differential test request: run ``headers`` through rule set ``ruleset``.

    ``expect`` (from the table, written by hand) maps every header the rule set may set to the values
    it must carry afterwards; ``lua_only`` vectors use a Lua-only rule set (no Wasm columns).
    """

    id: str
    ruleset: str
    headers: tuple[Header, ...]
    expect: dict[str, list[str]] = field(default_factory=dict)
    lua_only: bool = False


@dataclass(frozen=True)
class VectorTable:
    rulesets: dict[str, RuleSet]
    vectors: tuple[Vector, ...]


def _expand(value: str) -> str:
    """Vector-table shorthand: ``{{A*8000}}`` expands to 8000 'A's (keeps long values readable)."""
    return re.sub(r"\{\{(.)\*(\d+)\}\}", lambda m: m.group(1) * int(m.group(2)), value)


def load_vectors(path: str | Path) -> VectorTable:
    """Load the shared differential vector table (tests/data/tagging_vectors.yaml)."""
    doc = parse_yaml(Path(path).read_text(encoding="utf-8"), source=str(path))
    rulesets = {name: from_dict(body, source=f"{path}: ruleset {name}") for name, body in doc["rulesets"].items()}
    vectors = []
    ids: set[str] = set()
    for raw in doc["vectors"]:
        vid = raw["id"]
        if vid in ids:
            raise ValueError(f"duplicate vector id {vid}")
        ids.add(vid)
        rs_name = raw["ruleset"]
        headers = tuple((str(k), _expand(str(v))) for k, v in (raw.get("headers") or []))
        expect = {str(k).lower(): [_expand(str(x)) for x in v] for k, v in (raw.get("expect") or {}).items()}
        vectors.append(Vector(id=vid, ruleset=rs_name, headers=headers, expect=expect,
                              lua_only=rulesets[rs_name].uses_lua_only()))
    return VectorTable(rulesets=rulesets, vectors=tuple(vectors))
