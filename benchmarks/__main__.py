"""Run every benchmark: ``python -m benchmarks [name ...]``."""

import importlib
import pkgutil
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    here = Path(__file__).parent
    names = argv or sorted(m.name for m in pkgutil.iter_modules([str(here)]) if m.ispkg)
    for name in names:
        print(f"==> benchmark {name}", flush=True)
        importlib.import_module(f"benchmarks.{name}.__main__").main([])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
