"""Benchmarks: one module per `vitscope bench` sub-command, each with `register(subparsers)`.

`vitscope.commands.bench` imports every module of this package at start-up and calls its
`register(bench_subparsers)`; modules without `register` (shared helpers such as `common`)
are skipped. To add a benchmark, create `vitscope/bench/<name>.py` with

    def register(sub):
        p = sub.add_parser("<name>", help="...")
        p.add_argument(...)
        p.set_defaults(handler=run)

    def run(args) -> int:
        ...  # print one JSON object on stdout

and import torch and other heavy modules inside `run`, not at module level: every `vitscope`
command imports this package's modules to build its parser.
"""
