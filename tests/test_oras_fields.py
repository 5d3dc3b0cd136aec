"""The library speaks its domain: no string in meshfilter.oras names a command-line flag; the CLI spells the
fields its errors name as the running command's flags."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import meshfilter.oras
from meshfilter.cli import main

FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]+")


def test_no_flag_in_the_oras_library() -> None:
    found = []
    for path in sorted(Path(meshfilter.oras.__file__).parent.glob("*.py")):
        tree = ast.parse(path.read_text())
        docs = {id(n.body[0].value) for n in ast.walk(tree)  # type: ignore[attr-defined]
                if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef)) and n.body
                and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs \
                    and FLAG.search(node.value):
                found.append(f"{path.name}:{node.lineno}: {node.value[:60]!r}")
    assert not found


@pytest.mark.parametrize("args,needle", [
    (["oras", "push", "localhost:5000/a:1", "{mod}", "--oci-layout", "{tmp}"], "--root-id: format asm needs a runtime "
                                                                            "config (hint: pass --root-id ID (and "
                                                                            "--abi-version) or --runtime-config FILE)"),
    (["oras", "push", "localhost:5000/a:1", "{mod}", "--format", "docker", "--annotation", "a=b", "--oci-layout",
      "{tmp}"], "--annotation: Docker schema 2 manifests cannot carry annotations (hint: drop --annotation or use "
                "--format compat)"),
    (["oras", "push", "localhost:5000/a:1", "{mod}", "--root-id", "a b", "--oci-layout", "{tmp}"],
     "--root-id: root id 'a b' contains whitespace"),
    (["oras", "push", "localhost:5000/a:1", "{mod}", "--format", "cncf", "--root-id", "r", "--oci-layout", "{tmp}"],
     "--runtime-config: the CNCF Wasm layout has no place for a runtime config (root ids, ABI versions) (hint: drop "
     "--root-id/--runtime-config, or use --format wasme)"),
    (["oras", "pull", "http://localhost:5000/a:1", "-o", "{mod}.out"], "use --plain-http for HTTP registries"),
])
def test_the_cli_spells_fields_as_its_flags(args: list[str], needle: str, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    mod = tmp_path / "m.wasm"
    mod.write_bytes(b"\0asm\x01\0\0\0")
    rc = main([a.format(mod=mod, tmp=tmp_path / "oci") for a in args])
    _, err = capsys.readouterr()
    assert rc == 2 and needle in err and "`" not in err, err
