"""`vitscope bench`: sub-commands discovered from `vitscope.bench` modules that have `register`."""

import pkgutil

from vitscope import bench
from vitscope.cli import build_parser


def test_every_bench_module_with_register_is_a_sub_command():
    parser = build_parser()
    expected = {
        name
        for info in pkgutil.iter_modules(bench.__path__)
        if hasattr(__import__(f"vitscope.bench.{(name := info.name)}", fromlist=["x"]), "register")
    }
    assert "api_load" in expected
    args = parser.parse_args(["bench", "api-load", "--clients", "5", "--requests", "10"])
    assert args.clients == 5 and args.handler.__module__ == "vitscope.bench.api_load"
