"""Scenario 1's operations through pytest-benchmark (run by `python -m benchmarks`).

The runner starts this file in a subprocess and keeps its JSON; it also runs
alone (`pytest benchmarks --benchmark-only`), with groups putting every scheme
of one operation side by side (`--benchmark-autosave` / `--benchmark-compare`).
"""

import pytest

from benchmarks.scenarios.uncontended import OPS, all_schemes

pytest.importorskip("pytest_benchmark")

SCHEMES, MISSING = all_schemes()


@pytest.mark.parametrize("op", list(OPS))
@pytest.mark.parametrize("scheme", SCHEMES, ids=lambda c: c.name)
def test_vitals_op(benchmark, scheme, op):
    benchmark.group = op
    fn = OPS[op](scheme())
    benchmark(fn)
