"""Run the benchmarks (``make bench``): every ``bench/*_bench.py`` with a ``main()``.

    .venv/bin/python bench/run.py [--quick] [name ...]

Arguments other than names are passed on to each benchmark's ``main(argv)``.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> None:
    wanted = [a for a in argv if not a.startswith("-")]
    passed = [a for a in argv if a.startswith("-")]
    for path in sorted(HERE.glob("*_bench.py")):
        name = path.stem.removesuffix("_bench")
        if wanted and name not in wanted:
            continue
        spec = importlib.util.spec_from_file_location(path.stem, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[path.stem] = module  # importable by name (a benchmark may spawn processes)
        spec.loader.exec_module(module)
        print(f"=== {name} ===")
        module.main(passed)


if __name__ == "__main__":
    main(sys.argv[1:])
