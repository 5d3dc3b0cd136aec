"""Library fields -> command-line flags: the one place where the CLI spells the library's domain.

Library errors name the field an error is about (``where="root_id"``) and name fields in their text in
backticks (``"drop `plain_http`"``); see :mod:`meshfilter.errors`. The CLI renders them as the flags of
the command that ran: a field is the ``dest`` of one of that command's arguments, so ``root_id`` is
spelled ``--root-id`` and a positional ``module`` is spelled ``MODULE``. A command whose flag is named
differently from the library's field declares it with ``set_defaults(field_flags={"field": "--flag"})``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable


def leaf_parser(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.ArgumentParser:
    """The (sub)parser of the command that ran: follow the chosen subcommand at each level."""
    while True:
        sub = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
        if sub is None:
            return parser
        chosen = getattr(args, sub.dest, None)
        child = sub.choices.get(chosen) if chosen is not None else None
        if child is None:
            return parser
        parser = child


def flags_of(parser: argparse.ArgumentParser) -> dict[str, str]:
    """``dest`` -> how a user writes it: the first long option (``--root-id``), or the metavar of a
    positional (``MODULE``)."""
    out: dict[str, str] = {}
    for action in parser._actions:
        if action.dest in (argparse.SUPPRESS, "help") or isinstance(action, argparse._SubParsersAction):
            continue
        if action.option_strings:
            longs = [o for o in action.option_strings if o.startswith("--")]
            out.setdefault(action.dest, (longs or action.option_strings)[0])
        else:
            metavar = action.metavar if isinstance(action.metavar, str) else action.dest.upper()
            out.setdefault(action.dest, metavar)
    return out


def speller(parser: argparse.ArgumentParser, args: argparse.Namespace) -> Callable[[str], str | None]:
    """``field -> flag`` for the command that ran (None: not a field of this command)."""
    table = flags_of(leaf_parser(parser, args))
    table.update(getattr(args, "field_flags", None) or {})
    return table.get
