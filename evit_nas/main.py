"""``evit-nas``: the parser (each command group registers its own subcommands) and the one
place where a user's error becomes one line on stderr and exit code 2."""

from __future__ import annotations

import argparse
import logging
import sys

from search_space.errors import EvitNasError
from search_space.records import package_version

from . import latency, networks, report, search, validation, worker

#: the command groups, in the order `--help` lists them
GROUPS = (networks, latency, search, validation, worker, report)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="evit-nas",
        description="Hardware-aware search for efficient EfficientViT segmentation networks.",
        epilog="NETWORK is a registered name (see `evit-nas models`) or an ArchSpec JSON file. "
        "Resolutions are HxW, e.g. 1024x2048 (H=1024, W=2048).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for group in GROUPS:
        group.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except EvitNasError as exc:
        print(f"evit-nas: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
