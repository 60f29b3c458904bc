"""The ``lakevec`` command line: ``lakevec demo`` and ``lakevec version``."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lakevec", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="generate a small lake table in a temp folder and run lakevec on it")
    demo.add_argument("--rows", type=int, default=20_000, help="rows to generate")
    demo.add_argument("--dim", type=int, default=64, help="vector dimension")
    demo.add_argument("--keep", metavar="DIR", help="write the table here and keep it")
    sub.add_parser("version", help="print the lakevec version")
    args = parser.parse_args(argv)
    if args.command == "version":
        import lakevec

        print(lakevec.__version__)
        return 0
    from lakevec.demo import run_demo

    run_demo(rows=args.rows, dim=args.dim, keep=args.keep)
    return 0


if __name__ == "__main__":
    sys.exit(main())
