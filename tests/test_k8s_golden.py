"""Golden tests of ``meshfilter deploy``: one folder per case under tests/golden/deploy/.

Each case folder holds ``args.txt`` (the CLI arguments, shell words, ``#`` comments) and
``expected.yaml`` (or ``expected.json`` for ``-o json``); the command runs in the case folder, so
relative paths (``--module filter.wasm``, ``--docker-config docker-config.json``) resolve there.
Optional files: ``seed.yaml`` — the resource as printed in the seed, which the output must equal
field for field; ``forbidden.txt`` — strings (credentials of other hosts) that must appear neither
in stdout/stderr nor inside a decoded Secret.

``MESHFILTER_UPDATE_GOLDEN=1 pytest tests/test_k8s_golden.py`` rewrites the expected files.
"""

from __future__ import annotations

import base64
import json
import os
import shlex
from pathlib import Path

import pytest
import yaml

from meshfilter.cli import main
from meshfilter.k8s.output import load_yaml
from meshfilter.k8s.schema import schema_errors

GOLDEN = Path(__file__).parent / "golden" / "deploy"
CASES = sorted(p.name for p in GOLDEN.iterdir() if (p / "args.txt").exists())
UPDATE = os.environ.get("MESHFILTER_UPDATE_GOLDEN") == "1"


def _args(case: Path) -> list[str]:
    return shlex.split((case / "args.txt").read_text(), comments=True)


def _docs(text: str, as_json: bool) -> list[dict]:
    if not as_json:
        return load_yaml(text)
    obj = json.loads(text)
    return obj["items"] if obj.get("kind") == "List" else [obj]


def test_cases_exist() -> None:
    assert {"asm-seed-hello1", "asm-seed-hello2", "asm-gateway", "wasmplugin-pinned", "wasmplugin-inbound",
            "envoyfilter-inbound", "asm-secret-with-credentials", "asm-secret-without-credentials"} <= set(CASES)


@pytest.mark.parametrize("name", CASES)
def test_golden(name: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                tmp_path: Path) -> None:
    case = GOLDEN / name
    monkeypatch.chdir(case)
    monkeypatch.setenv("HOME", str(tmp_path))  # never read the real ~/.docker/config.json
    monkeypatch.delenv("DOCKER_CONFIG", raising=False)
    args = _args(case)
    as_json = "json" in args[args.index("-o") + 1:args.index("-o") + 2] if "-o" in args else False
    rc = main(args)
    out, err = capsys.readouterr()
    assert rc == 0, err
    expected = case / ("expected.json" if as_json else "expected.yaml")
    if UPDATE:
        expected.write_text(out)
    assert out == expected.read_text(), f"{name}: output differs (MESHFILTER_UPDATE_GOLDEN=1 rewrites)"

    docs = _docs(out, as_json)
    for doc in docs:
        assert schema_errors(doc) == []
        assert list(doc)[:3] == ["apiVersion", "kind", "metadata"]
    if (case / "seed.yaml").exists():
        seed = yaml.safe_load((case / "seed.yaml").read_text())
        assert docs == [seed]
    if (case / "forbidden.txt").exists():
        decoded = [base64.b64decode(v).decode() for d in docs if d["kind"] == "Secret"
                   for v in d["data"].values()]
        for bad in filter(None, (case / "forbidden.txt").read_text().splitlines()):
            for text in (out, err, *decoded):
                assert bad not in text, f"{bad!r} leaked"
