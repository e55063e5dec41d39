"""``python -m bench [BENCHMARK] [OPTIONS]``: every benchmark of Lookout from one entry point.

Without a benchmark name it runs the full suite (:mod:`bench.suite`: throughput, latency,
memory and replay in alternating rounds on a throw-away broker, ~5 minutes on 2 cores); with
one, that benchmark (``python -m bench NAME --help`` lists its options)::

    .venv/bin/python -m bench                                  # the full run -> bench/results/latest.json
    .venv/bin/python -m bench --only replay --rounds 3         # its replay round alone
    .venv/bin/python -m bench engine --customers 20000 --days 1
    .venv/bin/python -m bench replay --events 200000 --report
    .venv/bin/python -m bench decode
    .venv/bin/python -m bench state --scale 100000
    .venv/bin/python -m bench state-sync
    .venv/bin/python -m bench worker --events 300000
    .venv/bin/python -m bench rebuild --customers 300 --days 7
    .venv/bin/python -m bench parent-latency --interval 20
"""
from __future__ import annotations

import importlib
import sys

from bench import BENCHMARKS


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    name = args[0].replace("_", "-") if args else ""
    if name in BENCHMARKS:
        module, _what = BENCHMARKS[name]
        return importlib.import_module(module).main(args[1:])
    from bench import suite

    return suite.main(args)


if __name__ == "__main__":
    sys.exit(main())
