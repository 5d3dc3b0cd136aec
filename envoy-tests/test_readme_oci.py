"""The README's OCI section, pasted into a fresh shell: it must run, and print what the README shows.

The only change made to the pasted text is the port (a free one instead of 5000, so the test does not depend
on 5000 being free on a shared machine). ``meshfilter`` on PATH is this tree's (a shim running
``python -m meshfilter``). When the module or its packaging changes, the sizes and digests shown in the
README change with it: this test then fails and prints the output to paste into the README.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from meshfilter.util.ports import free_port
from meshfilter.util.proc import spawn

pytestmark = pytest.mark.registry
README = Path(__file__).resolve().parent.parent / "README.md"
SECTION = "### Publish the filter to an OCI registry"


def blocks(section: str) -> tuple[str, list[str]]:
    text = README.read_text()
    body = text[text.index(section):]
    body = body[:body.index("\n### ", 1)]
    script = re.search(r"```sh\n(.*?)```", body, re.S)
    shown = re.search(r"```console\n(.*?)```", body, re.S)
    assert script and shown, "the README's OCI section lost its sh or console block"
    return script.group(1), shown.group(1).splitlines()


def test_readme_oci_section_works_pasted_into_a_fresh_shell(tmp_path: Path) -> None:
    script, shown = blocks(SECTION)
    port = free_port()
    script = script.replace(":5000", f":{port}").replace("registry serve ", f"registry serve --port {port} ", 1)
    shim = tmp_path / "bin" / "meshfilter"
    shim.parent.mkdir()
    shim.write_text(f"#!/bin/sh\nexec {sys.executable} -m meshfilter \"$@\"\n")
    shim.chmod(0o755)
    work = tmp_path / "work"
    work.mkdir()
    env = {**os.environ, "PATH": f"{shim.parent}{os.pathsep}{os.environ['PATH']}",
           "DOCKER_CONFIG": str(tmp_path / "docker")}
    # its own process group, so whatever the script left running (the background registry) is ended by that
    # group's id if the script fails; the shell itself dies with us
    proc = spawn(["bash", "-e", "-c", script], cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                 text=True, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=180)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        proc.wait(timeout=30)
    assert proc.returncode == 0, stderr
    got = stdout.replace(f":{port}", ":5000").splitlines()
    url = "http://127.0.0.1:5000"
    assert url in got and url in shown  # the registry prints its URL once it answers (in its own time)
    assert [x for x in got if x != url] == [x for x in shown if x != url], (
        "the README's OCI output is stale; this is what the commands print now:\n" + "\n".join(got))
    assert "registry stopped; its temporary storage removed" in stderr
    assert "Traceback" not in stderr
