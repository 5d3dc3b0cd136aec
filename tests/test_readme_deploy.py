"""The README's deploy and transcoder commands work when pasted, and the help of those commands is plain text.

Every ``meshfilter deploy ...`` and ``meshfilter transcoder ...`` command in the README's shell blocks parses
(all required flags present); the ones that need no registry or Envoy run, and their output fits the
``kubectl apply`` they are piped to: with ``-n NS`` every resource must be in NS or name none, without it
every resource must name its namespace (kubectl refuses a stream that mixes namespaces with ``-n``).
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from meshfilter.cli import build_parser, main
from meshfilter.k8s.output import load_yaml

README = Path(__file__).resolve().parent.parent / "README.md"
NS = "hello-ns"


def _commands(prefix: str) -> list[tuple[list[str], list[str]]]:
    """(meshfilter argv, kubectl argv or []) of every README shell line starting with ``prefix``."""
    text = README.read_text()
    out = []
    for block in re.findall(r"```sh\n(.*?)```", text, flags=re.S):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            line = line.strip()
            if line.startswith(prefix):
                line = line.replace('"$NS"', NS).replace("$NS", NS)
                cmd, _, pipe = line.partition("|")
                out.append((shlex.split(cmd)[1:], shlex.split(pipe)))
    return out


DEPLOY = _commands("meshfilter deploy ")
TRANSCODER = _commands("meshfilter transcoder ")


def test_the_readme_has_the_deploy_commands() -> None:
    kinds = [argv[1] for argv, _ in DEPLOY]
    assert {"asm", "wasmplugin", "envoyfilter", "envoy-gateway"} <= set(kinds)
    assert TRANSCODER


@pytest.mark.parametrize(("argv", "pipe"), DEPLOY + TRANSCODER, ids=[" ".join(a[:2]) for a, _ in DEPLOY + TRANSCODER])
def test_each_readme_command_parses(argv: list[str], pipe: list[str]) -> None:
    build_parser().parse_args(argv)  # SystemExit (argparse's usage error) when a required flag is missing


@pytest.mark.parametrize(("argv", "pipe"), [c for c in DEPLOY if c[0][1] in ("asm", "envoy-gateway")],
                         ids=lambda c: c[1] if isinstance(c, list) and c and c[0] == "deploy" else None)
def test_readme_pipeline_output_fits_its_kubectl_apply(argv: list[str], pipe: list[str], tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))  # no docker config: the Secret has no credentials
    monkeypatch.delenv("DOCKER_CONFIG", raising=False)
    assert main(argv) == 0, capsys.readouterr().err
    docs = load_yaml(capsys.readouterr().out)
    assert pipe[:2] == ["kubectl", "apply"]
    namespaces = [d["metadata"].get("namespace") for d in docs]
    if "-n" in pipe:
        target = pipe[pipe.index("-n") + 1]
        assert all(ns in (None, target) for ns in namespaces), namespaces
    else:
        assert all(namespaces), namespaces
    assert namespaces[0] == NS


@pytest.mark.parametrize("command", [["deploy"], ["deploy", "asm"], ["deploy", "wasmplugin"],
                                     ["deploy", "envoyfilter"], ["deploy", "envoy-gateway"], ["transcoder"]])
def test_help_is_plain_text(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([*command, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "usage: meshfilter" in out and "``" not in out and ":func:" not in out
