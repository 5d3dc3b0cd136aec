"""``meshfilter new NAME``: the files of a new filter project. Pure (returns the files' text, from the
templates in ``sdk/templates/``).

The project is a filter written in Python (``filter.py``), its configuration (``config.json``), tests
that run it as the reference, in the Wasm host emulator, in a real Envoy and on every backend side by
side (``test_filter.py``, through meshfilter's pytest plugin), and a README with the commands.
"""

from __future__ import annotations

import json
import keyword
import re
from pathlib import Path

from meshfilter.errors import UsageError

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,62}$")

TEMPLATES = Path(__file__).resolve().parent / "templates"


def _template(name: str) -> str:
    return (TEMPLATES / f"{name}.tmpl").read_text(encoding="utf-8")


def class_name(name: str) -> str:
    """``my-canary`` -> ``MyCanary``."""
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[-_]+", name) if part)


def scaffold(name: str) -> dict[str, str]:
    """The files of project ``name``: path (relative) -> text."""
    if not _NAME.match(name):
        raise UsageError(f"{name!r} is not a usable filter name", where="name",
                         hint="use letters, digits, - and _, starting with a letter, e.g. canary")
    cls = class_name(name)
    if keyword.iskeyword(cls) or not cls.isidentifier() or cls in ("HttpFilter", "Request", "Response"):
        raise UsageError(f"{name!r} would make the class name {cls!r}", where="name", hint="choose another name")
    root_id = name.replace("-", "_").lower()
    header = "x-" + name.lower().replace("_", "-") + "-tag"
    fields = {"name": name, "cls": cls, "root_id": root_id, "header": header}
    return {
        "filter.py": _template("filter.py").format(**fields),
        "config.json": json.dumps({"header": header, "value": "version-gray"}) + "\n",
        "test_filter.py": _template("test_filter.py").format(**fields),
        "README.md": _template("README.md").format(**fields),
    }
