"""``cti ivr check [FILE...]``: validate IVR flow files before any call reaches them.

Without FILE, every ``*.toml`` of the configured ``ivr.flows_dir``.  Prompts are looked up in
``ivr.sounds_dirs`` (or ``--sounds-dir``, repeatable) when some are configured.  Exit 0 when every file
is good, 2 (``EXIT_USAGE``) on any problem, with one line per problem on stdout:

- ``FILE: node ID: FIELD: REASON``  a problem of one node (``FIELD`` is the key below the node, e.g.
  ``options.1`` or ``when.0.value``; a node-wide problem such as "unreachable" has no FIELD part:
  ``FILE: node ID: REASON``);
- ``FILE: FIELD: REASON``           a top-level key of the file: ``start``, ``nodes`` or an unknown key;
- ``FILE: REASON``                  the file itself: ``cannot read: ...``, ``invalid TOML: ...``, or a
  flows directory that is missing or holds no ``*.toml``.

A last line on stderr sums up: ``N file(s) checked, M error(s)``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TextIO

from callcenter.settings import Settings
from callcenter.startup import EXIT_USAGE
from ivr.errors import FlowError
from ivr.flow import check_file

__all__ = ["add_ivr_commands", "check_files", "cmd_check"]

Loader = Callable[[str | None], Settings]


def check_files(paths: Sequence[Path], sounds_dirs: Sequence[str | Path] = ()) -> list[FlowError]:
    """Every problem of every file, in file order; a directory stands for its ``*.toml``."""
    errors: list[FlowError] = []
    for p in paths:
        if p.is_dir():
            files = sorted(p.glob("*.toml"))
            if not files:
                errors.append(FlowError(str(p), "", "no IVR flow (*.toml) in the directory"))
            for f in files:
                errors += check_file(f, sounds_dirs)
        else:
            errors += check_file(p, sounds_dirs)
    return errors


def cmd_check(args: argparse.Namespace, load: Loader, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    files: list[str] = args.files
    sounds: list[str] | None = args.sounds_dir
    if not files or sounds is None:
        settings = load(getattr(args, "config", None))
        files = files or [settings.ivr.flows_dir]
        sounds = sounds if sounds is not None else list(settings.ivr.sounds_dirs)
    paths = [Path(f) for f in files]
    errors = check_files(paths, sounds)
    for e in errors:
        print(e.line(), file=out)
    count = sum(len(list(p.glob("*.toml"))) if p.is_dir() else 1 for p in paths)
    print(f"{count} file(s) checked, {len(errors)} error(s)", file=sys.stderr)
    return EXIT_USAGE if errors else 0


def add_ivr_commands(sub: Any, load: Loader,
                     actions: Iterable[Callable[[Any, Loader], object]] = ()) -> argparse.ArgumentParser:
    """Add ``ivr check`` to the ``cti`` subparsers ``sub``, and the ``actions`` (each called with the
    ``cti ivr`` subparsers and ``load``: ``ivr simulate``, ``ivr reload``)."""
    p: argparse.ArgumentParser = sub.add_parser(
        "ivr", help="check or simulate IVR flow files", description="IVR flow files (config/ivr/*.toml).")
    group = p.add_subparsers(dest="ivr_cmd", required=True, metavar="ACTION", help="what to do")
    c = group.add_parser("check", help="validate flow files: exit 0 when good, 2 with one line per error",
                         description="Validate IVR flow files; one 'FILE: node ID: field: reason' line per error.")
    c.add_argument("files", nargs="*", metavar="FILE", help="flow files or directories (default: ivr.flows_dir)")
    c.add_argument("--sounds-dir", action="append", metavar="DIR", default=None,
                   help="look for prompts here (repeatable; default: ivr.sounds_dirs)")
    c.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS,
                   help="the TOML configuration file (default: config/cti.toml)")
    c.set_defaults(fn=lambda a: cmd_check(a, load))
    for add in actions:  # ivr simulate, ivr reload: modules of their own that use this one
        add(group, load)
    return p
