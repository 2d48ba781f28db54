"""Loading a benchmark script (``benchmarks/`` is a folder of scripts, not a package)."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def load_benchmark(script: str, module_name: str | None = None):
    """``benchmarks/<script>.py`` as a module, named ``module_name`` (default
    ``<script>_bench``), so that its ``main(argv)`` can run in a test."""
    spec = importlib.util.spec_from_file_location(module_name or f"{script}_bench",
                                                  ROOT / "benchmarks" / f"{script}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
