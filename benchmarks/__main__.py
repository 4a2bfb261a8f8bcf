"""`python -m benchmarks [name ...]`: run the benchmark modules (all by default) and print their reports."""

from __future__ import annotations

import importlib
import pkgutil
import platform
import sys
import time
from pathlib import Path


def _machine() -> str:
    try:
        import os

        cores = os.cpu_count()
    except Exception:  # pragma: no cover
        cores = "?"
    return f"{platform.node()} · {platform.machine()} · {cores} cores · Python {platform.python_version()}"


def main(argv: list[str]) -> int:
    here = Path(__file__).parent
    names = sorted(m.name for m in pkgutil.iter_modules([str(here)]) if m.name.startswith("bench_"))
    if argv:
        names = [n for n in names if any(a in n for a in argv)]
    print(f"# cryptotracker benchmarks — {_machine()}")
    failed = 0
    for name in names:
        mod = importlib.import_module(f"benchmarks.{name}")
        print(f"\n## {name}")
        t0 = time.perf_counter()
        try:
            mod.main()
        except Exception as exc:  # a broken benchmark is reported, the others still run
            failed += 1
            print(f"FAILED: {type(exc).__name__}: {exc}")
        print(f"({time.perf_counter() - t0:.1f} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
