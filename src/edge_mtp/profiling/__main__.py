"""`python -m edge_mtp.profiling summarize DIR [--json OUT] [--package NAME]`.

Prints a table of energy per generated token (MTP on vs off) and writes it as JSON (default
DIR/energy_summary.json). User errors are one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edge_mtp.errors import EdgeMTPError


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m edge_mtp.profiling", description=__doc__.split("\n")[2])
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("summarize", help="J/token per run in a results folder, MTP on vs off")
    s.add_argument("dir", type=Path, help="results folder (profiling/README.md: layout)")
    s.add_argument("--json", type=Path, help="write the summary here (default DIR/energy_summary.json)")
    s.add_argument("--package", default="dev.edgemtp.demo", help="app package for batterystats estimates")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from edge_mtp.profiling.summarize import print_summary, summarize, write_summary

    try:
        summary = summarize(args.dir, args.package)
        write_summary(summary, args.json or args.dir / "energy_summary.json")
    except EdgeMTPError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print_summary(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
