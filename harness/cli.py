"""The ``harness`` command line. Subcommands come from plugins (``register_commands``)."""

from __future__ import annotations

import argparse
import sys
from importlib import metadata

from harness.errors import UsageError
from harness.plugins import PluginError, get_registry
from harness.rundir import RunDirError
from harness.suite import SuiteError

USAGE_ERRORS = (UsageError, SuiteError, RunDirError, PluginError, FileNotFoundError)
DISTRIBUTION = "review-harness"
"""The distribution that installs the ``harness`` package (``pip install review-harness``)."""
PLUGINS_DIR_HELP = "load every *.py in DIR as a plugin (before installed ones)"


def version() -> str:
    """``review-harness X.Y.Z``: the installed distribution's version."""
    try:
        return f"{DISTRIBUTION} {metadata.version(DISTRIBUTION)}"
    except metadata.PackageNotFoundError:  # imported from a source tree, not installed
        return f"{DISTRIBUTION} (not installed)"


def build_parser(plugins_dir: str | None) -> argparse.ArgumentParser:
    registry = get_registry(plugins_dir)
    parser = argparse.ArgumentParser(
        prog="harness", description="Review LLM transcripts against a suite of criteria.")
    parser.add_argument("-V", "--version", action="version", version=version())
    parser.add_argument("--plugins-dir", metavar="DIR", help=PLUGINS_DIR_HELP)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in sorted(registry.commands):
        command = registry.commands[name]
        p = sub.add_parser(name, help=command.help, description=command.help)
        command.add_arguments(p)
        # also after the subcommand; SUPPRESS keeps a value given before it
        p.add_argument("--plugins-dir", metavar="DIR", default=argparse.SUPPRESS,
                       help=PLUGINS_DIR_HELP)
        p.set_defaults(_run=command.run)
    return parser


def _plugins_dir(argv: list[str]) -> str | None:
    """The ``--plugins-dir`` given anywhere before ``--`` (twice only with the same value)."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--plugins-dir", action="append", default=[])
    known, _ = pre.parse_known_args(argv[: argv.index("--")] if "--" in argv else argv)
    if len(set(known.plugins_dir)) > 1:
        raise UsageError(f"--plugins-dir given twice with different folders: "
                         f"{', '.join(known.plugins_dir)}")
    return known.plugins_dir[0] if known.plugins_dir else None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] in (["-V"], ["--version"]):  # without loading plugins: works when one is broken
        print(version())
        return 0
    try:
        parser = build_parser(_plugins_dir(argv))
    except (PluginError, UsageError) as exc:
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
