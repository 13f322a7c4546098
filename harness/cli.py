"""The ``harness`` command line. Subcommands come from plugins (``register_commands``)."""

from __future__ import annotations

import argparse
import sys

from harness.errors import UsageError
from harness.plugins import PluginError, get_registry
from harness.rundir import RunDirError
from harness.suite import SuiteError

USAGE_ERRORS = (UsageError, SuiteError, RunDirError, PluginError, FileNotFoundError)


def build_parser(plugins_dir: str | None) -> argparse.ArgumentParser:
    registry = get_registry(plugins_dir)
    parser = argparse.ArgumentParser(
        prog="harness", description="Review LLM transcripts against a suite of criteria.")
    parser.add_argument("--plugins-dir", metavar="DIR",
                        help="load every *.py in DIR as a plugin (before installed ones)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in sorted(registry.commands):
        command = registry.commands[name]
        p = sub.add_parser(name, help=command.help, description=command.help)
        command.add_arguments(p)
        p.set_defaults(_run=command.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--plugins-dir")
    known, _ = pre.parse_known_args(argv)
    try:
        parser = build_parser(known.plugins_dir)
    except PluginError as exc:
        print(f"harness: error: {exc}", file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except USAGE_ERRORS as exc:
        print(f"harness: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("harness: interrupted; finish later with --resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
