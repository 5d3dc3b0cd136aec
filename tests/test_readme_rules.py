"""The README's rules.yaml example works when pasted into a shell (issue 13, item 5)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

from meshfilter.filters import tagging as t
from meshfilter.k8s.schema import schema_errors

REPO = Path(__file__).resolve().parent.parent
BLOCK = re.compile(r"```sh\n(cat > rules\.yaml <<'EOF'\n.*?)```", re.S)


def _block(path: Path) -> str:
    (block,) = BLOCK.findall(path.read_text(encoding="utf-8"))
    return block


def test_the_readme_and_its_snippet_show_the_same_example() -> None:
    assert _block(REPO / "README.md") == _block(REPO / "docs" / "readme-snippets" / "lua.md")


def test_the_readme_rules_example_runs_as_pasted(tmp_path: Path) -> None:
    # `meshfilter` on PATH is this interpreter with this tree (PYTHONPATH is passed through)
    shim = tmp_path / "bin"
    shim.mkdir()
    (shim / "meshfilter").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m meshfilter "$@"\n')
    (shim / "meshfilter").chmod(0o755)
    work = tmp_path / "work"
    work.mkdir()
    env = {**os.environ, "PATH": f"{shim}{os.pathsep}{os.environ.get('PATH', '')}"}
    block = _block(REPO / "README.md")
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=work, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    shown = [line[2:] for line in block.splitlines() if line.startswith("#  ")]  # the output the README shows
    assert shown == ["  x-asm-prefer-tag: version-gray"]
    assert proc.stdout.splitlines() == shown

    rs = t.load_rules(work / "rules.yaml")
    assert [r.name for r in rs.rules] == ["iphone13", "beta-testers"]
    assert t.evaluate(rs, [("user-agent", "Mozilla iPhone13")])[-1] == ("x-asm-prefer-tag", "version-gray")
    assert t.evaluate(rs, [("x-beta", "")])[-2:] == [("x-asm-prefer-tag", "version-gray"), ("x-beta-seen", "yes")]
    assert t.evaluate(rs, [("user-agent", "curl/8")])[-1] == ("x-asm-prefer-tag", "version-base")
    (doc,) = yaml.safe_load_all((work / "gateway-lua.yaml").read_text(encoding="utf-8"))
    assert doc["kind"] == "EnvoyFilter" and schema_errors(doc) == []
    assert (work / "tag.wasm").read_bytes()[:4] == b"\0asm"
