"""pytest-benchmark view of bench_vitals (opt-in: `pytest benchmarks --benchmark-only`).

Groups put every scheme of one operation side by side; compare runs with
`--benchmark-autosave` / `--benchmark-compare`.
"""

import pytest

import vitals_impls as impls
from bench_vitals import OPS

pytest.importorskip("pytest_benchmark")

EXTRA, MISSING = impls.optional_schemes()
SCHEMES = impls.BASE_SCHEMES + EXTRA


@pytest.mark.parametrize("op", list(OPS))
@pytest.mark.parametrize("scheme", SCHEMES, ids=lambda c: c.name)
def test_vitals_op(benchmark, scheme, op):
    benchmark.group = op
    fn = OPS[op](scheme())
    benchmark(fn)
