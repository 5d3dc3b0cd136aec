"""The README's Quick start, pasted into a fresh bash as a user would: every command works and prints
what the README shows (issue 13 item 5)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.envoy

README = Path(__file__).resolve().parents[1] / "README.md"


def quick_start() -> list[tuple[str, list[str]]]:
    """(command, the output lines the README shows for it) of the Quick start's console block."""
    text = README.read_text()
    section = text[text.index("## Quick start"):]
    block = section[section.index("```console\n") + len("```console\n"):]
    block = block[:block.index("```")]
    steps: list[tuple[str, list[str]]] = []
    lines = block.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        assert line.startswith("$ "), f"output before any command: {line!r}"
        cmd = line[2:]
        while cmd.rstrip().endswith("\\"):  # a continued line: pasted as it is
            i += 1
            cmd = cmd + "\n" + lines[i]
        i += 1
        out = []
        while i < len(lines) and not lines[i].startswith("$ "):
            out.append(lines[i])
            i += 1
        steps.append((cmd, out))
    return steps


def _normalize(line: str) -> str:
    return re.sub(r"\(\d+ bytes", "(N bytes", line)  # the module's size is not the point of the Quick start


def test_quick_start_block_is_what_we_expect_to_run() -> None:
    cmds = [c.split()[0] for c, _ in quick_start()]
    assert cmds == ["meshfilter", "exec", "read", "curl", "kill"]


def test_quick_start_works_when_pasted_into_bash(tmp_path: Path) -> None:
    if shutil.which("meshfilter") is None:
        pytest.fail("the meshfilter console script is not on PATH (pip install -e .)")
    steps = quick_start()
    script = ["set -u"]
    for n, (cmd, out) in enumerate(steps):
        # a command whose output the README shows is compared (stderr too: `wrote ...`); the others'
        # stderr goes to the terminal, as for the user (envoy run's "admin: ..." line)
        script.append(f"{{ {cmd}\n}} 2>&1" if out else cmd)
        script.append(f'echo "@@@ {n} $?"')
    token = uuid.uuid4().hex
    env = {**os.environ, "MESHFILTER_README_TOKEN": token}
    proc = subprocess.run(["bash", "-c", "\n".join(script)], capture_output=True, text=True, cwd=tmp_path,
                          env=env, timeout=300)
    outputs: dict[int, list[str]] = {}
    current: list[str] = []
    for line in proc.stdout.splitlines():
        m = re.fullmatch(r"@@@ (\d+) (\d+)", line)
        if m:
            assert m.group(2) == "0", f"step {m.group(1)} ({steps[int(m.group(1))][0]!r}) failed: {current}"
            outputs[int(m.group(1))] = current
            current = []
        else:
            current.append(line)
    assert sorted(outputs) == list(range(len(steps))), proc.stdout + proc.stderr
    for n, (cmd, out) in enumerate(steps):
        assert [_normalize(x) for x in outputs[n]] == [_normalize(x) for x in out], cmd
    assert "Traceback" not in proc.stderr
    # `kill $!` stopped envoy run, and envoy run stopped its Envoy: nothing of the session is left
    deadline = time.monotonic() + 30
    while _with_token(token) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _with_token(token) == []


def _with_token(token: str) -> list[int]:
    from meshfilter.util.proc import pid_alive

    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if token.encode() in (d / "environ").read_bytes() and pid_alive(int(d.name)):
                    out.append(int(d.name))
            except OSError:
                continue
    return out
