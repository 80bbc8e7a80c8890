#!/usr/bin/env python3
"""CNN Lab benchmarks: one command, ``python3 run.py bench [WHAT] [OPTIONS]`` from the repo root.

    python3 run.py bench                      # layer benchmarks (same as `bench layers`)
    python3 run.py bench layers [--quick] [--only conv|pool|bn] [--threads N] [--max-cols-mib M]
    python3 run.py bench models [ARGS]        # model benchmarks (benchmarks/bench_models.py)
    python3 run.py bench NAME [ARGS]          # any other benchmarks/bench_NAME.py with main(argv)

Results are printed as a table and saved under ``benchmarks/results/`` (JSON + markdown).
See ``benchmarks/README.md`` for what is measured and the targets.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

__all__ = ["main"]

HERE = Path(__file__).resolve().parent


def _load(name: str):
    path = HERE / f"{name}.py"
    if not path.exists():
        return None
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def main(argv: list[str]) -> int:
    what, rest = "layers", list(argv)
    if rest and (rest[0] in ("help", "-h", "--help") or (HERE / f"bench_{rest[0]}.py").exists()):
        what, rest = rest[0], rest[1:]
    if what in ("help", "-h", "--help"):
        print(__doc__)
        return 0
    module = _load(f"bench_{what}")
    if module is None:
        print(f"benchmarks/bench_{what}.py is not there", file=sys.stderr)
        return 2
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
